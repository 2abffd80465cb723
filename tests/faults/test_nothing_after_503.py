"""A 503 means nothing happened (API.md section 1: fail closed, never "logged out").

Two worker processes on a PostgreSQL and a Redis of the test's own. Logins and refreshes
are in flight, on both workers, when Redis or PostgreSQL stops answering, under a load of
readers. Afterwards: every client that was not told "logged out" is still logged in (its
cookies work and refresh), no login exists that no client holds, no login is audited as a
success that its client saw fail, and every answer came within the contract's 5 s.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from app.auth.sessions.deadline import REPLY_MARGIN
from app.config import Settings
from tests.faults.deployment import Deployment
from tests.faults.helpers import ANSWER_WITHIN_SECONDS, eventually, list_items, login_as, me, refresh
from tests.fixtures.client import API, Account, ApiClient, login, register

pytestmark = pytest.mark.slow

CLIENT_TIMEOUT = Settings.model_fields["redis_timeout_seconds"].default  # the workers' own
GUARD = CLIENT_TIMEOUT * (1 - REPLY_MARGIN)
LOGINS = 8
REFRESHES = 6
# Logins are sent this far apart, from LOGINS * SPACING before the fault: the ones whose
# Argon2 hash ends after the fault began have their session write in flight at that moment.
SPACING = 0.04


async def timed(call: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await asyncio.wait_for(call, ANSWER_WITHIN_SECONDS * 3)
    return response, time.monotonic() - started


async def logged_in(deployment: Deployment, count: int) -> list[tuple[ApiClient, Account]]:
    made = []
    for index in range(count):
        client = deployment.client(index)
        account = await register(client)
        await login(client, account)
        made.append((client, account))
    return made


async def newcomers(deployment: Deployment, count: int) -> list[tuple[ApiClient, Account]]:
    """Registered, with a CSRF token, not logged in."""
    made = []
    for index in range(count):
        client = deployment.client(index)
        made.append((client, await register(client)))
        await client.csrf_token()
    return made


@asynccontextmanager
async def readers(deployment: Deployment) -> AsyncIterator[list[tuple[int, float]]]:
    """A load of anonymous and logged-in reads on both workers for the length of the block;
    yields the (status, seconds) of each, for the promise on every answer."""
    seen: list[tuple[int, float]] = []
    stop = asyncio.Event()
    users = await logged_in(deployment, 4)

    async def read(client: ApiClient, call: Callable[[ApiClient], Awaitable[httpx.Response]]) -> None:
        while not stop.is_set():
            response, elapsed = await timed(call(client))
            seen.append((response.status_code, elapsed))

    tasks = [asyncio.create_task(read(c, call)) for c, _ in users for call in (me, list_items)]
    tasks += [asyncio.create_task(read(deployment.client(i), list_items)) for i in range(2)]
    await asyncio.sleep(0.3)
    try:
        yield seen
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def assert_within_the_promise(answers: list[tuple[int, float]], what: str) -> None:
    statuses = {status for status, _elapsed in answers}
    assert statuses <= {200, 503}, f"{what}: {sorted(statuses)}"
    slowest = max(elapsed for _status, elapsed in answers)
    assert slowest < ANSWER_WITHIN_SECONDS, f"{what}: an answer after {slowest:.2f} s"


async def assert_still_logged_in(client: ApiClient, what: str) -> None:
    """Its cookies work, and refresh once (a refresh that ran behind its 503 would have left
    this browser's refresh token "already rotated" and its session deleted)."""
    await eventually(lambda: me(client), 200, f"{what}: GET /users/me")
    assert (await refresh(client)).status_code == 200, what
    assert (await me(client)).status_code == 200, what


async def assert_no_login_nobody_holds(
    deployment: Deployment, logins: list[tuple[tuple[ApiClient, Account], httpx.Response]]
) -> None:
    for (client, account), response in logins:
        held = await deployment.logins_in_redis(account.id)
        if response.status_code == 200:
            assert len(held) == 1, f"{account.username}: logged in, {len(held)} logins in Redis"
            await assert_still_logged_in(client, account.username)
        else:
            assert held == set(), f"{account.username}: told 503, yet a login exists in Redis"
            assert client.session_token is None


def assert_audited_as_answered(
    deployment: Deployment, logins: list[tuple[tuple[ApiClient, Account], httpx.Response]]
) -> None:
    succeeded = {line["actor"] for line in deployment.audited("login", "success")}
    for (_client, account), response in logins:
        assert (account.id in succeeded) == (response.status_code == 200), account.username


async def warm_pools(users: list[tuple[ApiClient, Account]]) -> None:
    """Open connections in every worker's Redis pool: a request that reaches a paused Redis on
    one writes its command into Redis's socket at once (a new connection would wait in its
    handshake instead, and never send it). Reads of the session share one pipeline, so the
    sessions list, one command per call, is what opens them. And a refresh each, as a live
    deployment has run one: a script Redis does not know yet fails at once instead of late."""
    for client, _ in users:
        assert (await refresh(client)).status_code == 200
    await asyncio.gather(*(client.get(f"{API}/users/me/sessions") for client, _ in users for _ in range(20)))


async def staggered_logins(
    users: list[tuple[ApiClient, Account]],
) -> list[asyncio.Task[tuple[httpx.Response, float]]]:
    tasks = []
    for client, account in users:
        tasks.append(asyncio.create_task(timed(login_as(client, account))))
        await asyncio.sleep(SPACING)
    return tasks


@pytest.mark.parametrize(
    "pause",
    [GUARD * 0.4, (GUARD + CLIENT_TIMEOUT) / 2, CLIENT_TIMEOUT + 2.0],
    ids=[
        "shorter-than-the-guard",
        "between-the-guard-and-the-client-timeout",
        "longer-than-the-client-timeout",
    ],
)
async def test_a_redis_pause_logs_no_one_out_and_leaves_no_login_behind_its_503(deployment, pause):
    holders = await logged_in(deployment, REFRESHES)
    arriving = await newcomers(deployment, LOGINS)
    async with readers(deployment) as reads:
        await warm_pools(holders)
        logins = await staggered_logins(arriving)
        deployment.redis.hang()
        # Sent into the pause, on the workers' open pooled connections: written to Redis's
        # socket, run when it resumes (as the review's repro, 50 ms into a SIGSTOP).
        await asyncio.sleep(0.05)
        refreshes = [asyncio.create_task(timed(refresh(client))) for client, _ in holders]
        await asyncio.sleep(pause - 0.05)
        deployment.redis.resume()
        refreshed = await asyncio.gather(*refreshes)
        logged = await asyncio.gather(*logins)
    assert_within_the_promise([*reads, *((r.status_code, t) for r, t in [*refreshed, *logged])], "answers")

    for (client, account), (response, _elapsed) in zip(holders, refreshed, strict=True):
        assert response.status_code in (200, 503), response.text
        await assert_still_logged_in(client, account.username)
        assert len(await deployment.logins_in_redis(account.id)) == 1, account.username
    outcomes = [(user, response) for user, (response, _elapsed) in zip(arriving, logged, strict=True)]
    await assert_no_login_nobody_holds(deployment, outcomes)
    assert_audited_as_answered(deployment, outcomes)


@pytest.mark.parametrize("fault", ["pause", "restart"])
async def test_a_login_whose_database_work_failed_hands_out_no_session_and_audits_no_success(
    deployment, fault
):
    arriving = await newcomers(deployment, LOGINS)
    async with readers(deployment) as reads:
        logins = await staggered_logins(arriving)
        if fault == "pause":
            deployment.postgres.hang()
            await asyncio.sleep(CLIENT_TIMEOUT * 2)
            deployment.postgres.resume()
        else:
            await deployment.postgres.restart("fast")
        logged = await asyncio.gather(*logins)
    assert_within_the_promise([*reads, *((r.status_code, t) for r, t in logged)], "answers")

    outcomes = [(user, response) for user, (response, _elapsed) in zip(arriving, logged, strict=True)]
    await assert_no_login_nobody_holds(deployment, outcomes)
    assert_audited_as_answered(deployment, outcomes)
