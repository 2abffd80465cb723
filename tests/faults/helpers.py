"""What a user notices during an outage: how fast, with which status and envelope, and when it heals."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from tests.fixtures.client import API, Account, ApiClient, unique

# The contract (API.md section 1): an outage is answered with 503 within this many seconds.
ANSWER_WITHIN_SECONDS = 5.0
# How long a test waits for the app to serve again once the dependency is back.
RECOVER_WITHIN_SECONDS = 10.0


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[FastAPI]:
    """The app's lifespan for the length of a block (`running()` of tests/conftest.py, as a
    context manager)."""
    async with app.router.lifespan_context(app):
        yield app


async def timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    """The response and how long it took. Gives up at twice the contract, so a hang fails the
    test instead of stalling the run."""
    started = time.monotonic()
    response = await asyncio.wait_for(request, ANSWER_WITHIN_SECONDS * 2)
    return response, time.monotonic() - started


async def all_at_once(
    calls: Mapping[str, Awaitable[httpx.Response]],
) -> dict[str, tuple[httpx.Response, float]]:
    """Sent together, as real traffic would be; each is timed on its own."""
    results = await asyncio.gather(*(timed(call) for call in calls.values()))
    return dict(zip(calls, results, strict=True))


def assert_unavailable(response: httpx.Response, elapsed: float, what: str) -> None:
    """503 `service_unavailable` in the envelope, with Retry-After, within the contract's 5 s."""
    assert response.status_code == 503, f"{what}: {response.status_code} {response.text}"
    error = response.json()["error"]
    assert error["code"] == "service_unavailable", f"{what}: {error}"
    assert set(error) == {"code", "message", "details"}, f"{what}: {error}"
    assert int(response.headers["retry-after"]) > 0, what
    assert elapsed < ANSWER_WITHIN_SECONDS, f"{what}: answered after {elapsed:.2f} s"


def assert_all_unavailable(results: Mapping[str, tuple[httpx.Response, float]]) -> None:
    # Every answer in the message, not only the first bad one: the pattern tells which timeout fired.
    seen = ", ".join(f"{what}: {r.status_code} in {elapsed:.2f} s" for what, (r, elapsed) in results.items())
    for what, (response, elapsed) in results.items():
        try:
            assert_unavailable(response, elapsed, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc} (all: {seen})") from None


def sets_session_cookie(response: httpx.Response, session_cookie: str) -> bool:
    return any(h.startswith(f"{session_cookie}=") for h in response.headers.get_list("set-cookie"))


async def assert_outage_answered(
    results: Mapping[str, tuple[httpx.Response, float]],
    failed: str,
    session_cookie: str,
    client: httpx.AsyncClient,
) -> None:
    """What every outage must look like to the requests sent during it (which include a
    "login" and a "GET /health"): all 503 in time, /health naming the `failed` check, the
    login setting no session cookie; and /healthz, which needs neither, answering at once."""
    assert_all_unavailable(results)
    health, _elapsed = results["GET /health"]
    assert health.json()["error"]["details"] == {failed: "unavailable"}
    login_response, _elapsed = results["login"]
    assert not sets_session_cookie(login_response, session_cookie)
    live, elapsed = await timed(client.get("/healthz"))
    assert live.status_code == 200
    assert elapsed < 1


async def eventually(
    call: Callable[[], Awaitable[httpx.Response]], expected: int, what: str
) -> httpx.Response:
    """Polls until `expected`; meanwhile only 503 is acceptable (recovering), never 401 or 500."""
    deadline = time.monotonic() + RECOVER_WITHIN_SECONDS
    while True:
        response, _elapsed = await timed(call())
        if response.status_code == expected:
            return response
        assert response.status_code == 503, f"{what}: {response.status_code} {response.text}"
        assert time.monotonic() < deadline, f"{what}: still 503 {RECOVER_WITHIN_SECONDS} s after recovery"
        await asyncio.sleep(0.2)


# --- the requests a user makes ---------------------------------------------------------------------


def me(client: ApiClient) -> Awaitable[httpx.Response]:
    return client.get(f"{API}/users/me")


def create_item(client: ApiClient) -> Awaitable[httpx.Response]:
    return client.post(f"{API}/items", json={"title": unique("fault item ")})


def list_items(client: ApiClient) -> Awaitable[httpx.Response]:
    return client.get(f"{API}/items")


def logout(client: ApiClient) -> Awaitable[httpx.Response]:
    return client.post(f"{API}/auth/logout")


def refresh(client: ApiClient) -> Awaitable[httpx.Response]:
    return client.post(f"{API}/auth/refresh")


def login_as(
    client: ApiClient, account: Account, *, password: str | None = None
) -> Awaitable[httpx.Response]:
    return client.post(
        f"{API}/auth/login", json={"username": account.username, "password": password or account.password}
    )


def register_new(client: ApiClient, password: str) -> Awaitable[httpx.Response]:
    username = unique()
    return client.post(
        f"{API}/auth/register",
        json={"email": f"{username}@example.com", "username": username, "password": password},
    )
