"""API.md section 3, rate limits (and section 1: 429 `rate_limited` with `Retry-After`).

Every test builds its own apps with strict limits and a Redis key prefix of its own,
and simulates client addresses with the ASGI transport's `client`.
"""

import logging
import uuid
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from app.auth.cookies import COOKIES
from app.config import Settings
from app.main import create_app
from app.state import SETTINGS, state_of
from tests.conftest import make_settings, running
from tests.fixtures.client import API, PASSWORD, ApiClient, register, unique

LOGIN = f"{API}/auth/login"
WRONG = "not-the-password-at-all"
UNTRUSTED_PEER = "203.0.113.7"  # not in FORWARDED_ALLOW_IPS
PROXY = "127.0.0.1"  # the default FORWARDED_ALLOW_IPS
LOGIN_LIMIT = 5  # per minute
REGISTER_LIMIT = 3  # per hour

serve = asynccontextmanager(running)


def address(n: int) -> str:
    """Distinct client addresses (TEST-NET-2), one per n."""
    return f"198.51.100.{n}"


class Stack:
    """Strictly limited apps on a key prefix of this test's own, and clients at given addresses."""

    def __init__(self, database_url: str, prefix: str, exits: AsyncExitStack) -> None:
        self.database_url = database_url
        self.prefix = prefix
        self.exits = exits

    async def app(self, **overrides: object) -> FastAPI:
        settings = make_settings(
            self.database_url,
            self.prefix,
            login_rate_limit=f"{LOGIN_LIMIT}/minute",
            register_rate_limit=f"{REGISTER_LIMIT}/hour",
            **overrides,
        )
        return await self.exits.enter_async_context(serve(create_app(settings)))

    async def client(self, app: FastAPI, ip: str, base_url: str = "https://testserver") -> ApiClient:
        return await self.exits.enter_async_context(client_at(app, ip, base_url))


def client_at(app: FastAPI, ip: str, base_url: str = "https://testserver") -> ApiClient:
    cookies = state_of(app)[COOKIES]
    return ApiClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 40000)),
        base_url=base_url,
        csrf_cookie=cookies.csrf,
        session_cookie=cookies.session,
    )


async def attempt(
    client: ApiClient, username: str, password: str = WRONG, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(LOGIN, json={"username": username, "password": password}, headers=headers)


def assert_failed(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_credentials"


def assert_rate_limited(response: httpx.Response, window_seconds: int) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "rate_limited"
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert body["error"]["details"] is None
    retry_after = response.headers.get("retry-after", "")
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= window_seconds
    assert "set-cookie" not in response.headers


# --- login: per submitted username or email -----------------------------------------------------


async def test_sixth_login_for_a_username_is_429_even_with_the_right_password(stack):
    app = await stack.app()
    account = await register(await stack.client(app, address(200)))
    # A fresh address for every attempt: only the per-username count can answer 429.
    for n in range(LOGIN_LIMIT):
        assert_failed(await attempt(await stack.client(app, address(n)), account.username))

    sixth = await attempt(await stack.client(app, address(LOGIN_LIMIT)), account.username)
    assert_rate_limited(sixth, 60)

    # No free pass for whoever knows the password while the window is full.
    right = await attempt(await stack.client(app, address(100)), account.username, account.password)
    assert_rate_limited(right, 60)


async def test_username_and_email_of_one_account_share_one_case_folded_count(stack, redis):
    # Counted apart, they gave ten guesses a minute per account (judy, then judy@...).
    app = await stack.app()
    account = await register(await stack.client(app, address(200)))
    name, email = account.username, account.email
    ip = iter(range(100))

    spellings = [name.upper(), email, name.title(), email.upper(), name.lower()]
    for spelling in spellings:
        assert_failed(await attempt(await stack.client(app, address(next(ip))), spelling))
    for spelling in (email.swapcase(), name.swapcase()):
        assert_rate_limited(await attempt(await stack.client(app, address(next(ip))), spelling), 60)
    # The right password from a fresh address fares no better while the window is full.
    right = await attempt(await stack.client(app, address(next(ip))), email, account.password)
    assert_rate_limited(right, 60)

    # One count, under the account (not under either submitted string).
    keyed = set()
    async for key in redis.scan_iter(match=f"{stack.prefix}*login-[ua]*/*", count=1000):
        keyed.add(key.split("/login-", 1)[1].removesuffix(f"/{LOGIN_LIMIT}/1/minute"))
    assert keyed == {f"account/{account.id}"}


async def test_an_unknown_identifier_is_limited_like_an_account(stack):
    # Without revealing whether the name resolved: the same 429 after the same count.
    app = await stack.app()
    nobody = unique("nobody")
    for n in range(LOGIN_LIMIT):
        assert_failed(await attempt(await stack.client(app, address(n)), nobody.upper() if n % 2 else nobody))
    assert_rate_limited(await attempt(await stack.client(app, address(50)), nobody), 60)


async def test_username_count_uses_unicode_case_folding(stack):
    # "ß" and "SS" fold to the same "ss" (str.lower() would keep them apart).
    app = await stack.app()
    stem = unique("x")
    spellings = [f"{stem}straße", f"{stem.upper()}STRASSE"]
    for n in range(LOGIN_LIMIT):
        assert_failed(await attempt(await stack.client(app, address(n)), spellings[n % 2]))
    assert_rate_limited(await attempt(await stack.client(app, address(50)), f"{stem}strasse"), 60)


# --- login: per client address ------------------------------------------------------------------


async def test_one_address_rotating_usernames_gets_429_and_other_addresses_do_not(stack):
    app = await stack.app()
    client = await stack.client(app, UNTRUSTED_PEER)
    for _ in range(LOGIN_LIMIT):
        assert_failed(await attempt(client, unique()))
    assert_rate_limited(await attempt(client, unique()), 60)

    other = await stack.client(app, address(1))
    assert_failed(await attempt(other, unique()))


@pytest.mark.parametrize(
    "spellings",
    [
        ["203.0.113.77", "::ffff:203.0.113.77", "::FFFF:cb00:714d", "0:0:0:0:0:ffff:203.0.113.77"],
        [f"2001:db8:1234:5678::{n:x}" for n in range(1, 13)],  # twelve hosts of one /64
    ],
    ids=["v4-mapped", "ipv6-64"],
)
async def test_spellings_of_one_address_and_hosts_of_one_ipv6_64_share_one_count(stack, spellings):
    app = await stack.app()
    for n in range(LOGIN_LIMIT):
        client = await stack.client(app, spellings[n % len(spellings)])
        assert_failed(await attempt(client, unique()))
    for spelling in spellings:
        assert_rate_limited(await attempt(await stack.client(app, spelling), unique()), 60)
    # The next /64, or another IPv4 address, is someone else.
    neighbour = "2001:db8:1234:5679::1" if ":" in spellings[0] else "203.0.113.78"
    assert_failed(await attempt(await stack.client(app, neighbour), unique()))


async def test_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(stack):
    app = await stack.app()
    client = await stack.client(app, UNTRUSTED_PEER)
    for n in range(LOGIN_LIMIT):
        spoofed = {"X-Forwarded-For": f"10.{n}.{uuid.uuid4().int % 256}.{uuid.uuid4().int % 256}"}
        assert_failed(await attempt(client, unique(), headers=spoofed))
    spoofed = {"X-Forwarded-For": f"{address(99)}, 10.9.9.9"}
    assert_rate_limited(await attempt(client, unique(), headers=spoofed), 60)
    # Nor did the spoofed addresses get charged: a trusted proxy forwarding one is fresh.
    proxied = await stack.client(app, PROXY)
    assert_failed(await attempt(proxied, unique(), headers={"X-Forwarded-For": address(99)}))


async def test_behind_a_trusted_proxy_forwarded_for_decides_the_address(stack):
    app = await stack.app()
    assert state_of(app)[SETTINGS].forwarded_allow_ips == PROXY
    proxy = await stack.client(app, PROXY)
    first, second = {"X-Forwarded-For": address(1)}, {"X-Forwarded-For": address(2)}
    for _ in range(LOGIN_LIMIT):
        assert_failed(await attempt(proxy, unique(), headers=first))
    assert_rate_limited(await attempt(proxy, unique(), headers=first), 60)
    # Same peer, another forwarded address: its own count.
    for _ in range(LOGIN_LIMIT):
        assert_failed(await attempt(proxy, unique(), headers=second))
    assert_rate_limited(await attempt(proxy, unique(), headers=second), 60)


# --- register, forgot-password, request-verify-token --------------------------------------------


async def test_register_forgot_password_and_request_verify_are_limited_per_address_each_on_its_own(stack):
    app = await stack.app()
    client = await stack.client(app, UNTRUSTED_PEER)
    for _ in range(REGISTER_LIMIT):
        await register(client)
    username = unique()
    fourth = await client.post(
        f"{API}/auth/register",
        json={"email": f"{username}@example.com", "username": username, "password": PASSWORD},
    )
    assert_rate_limited(fourth, 3600)
    await register(await stack.client(app, address(1)))  # another address registers fine

    # Register's count used up does not block the mail-sending routes: each counts on its own.
    for path in ("/auth/forgot-password", "/auth/request-verify-token"):
        for _ in range(REGISTER_LIMIT):
            response = await client.post(f"{API}{path}", json={"email": f"{unique()}@example.com"})
            assert response.status_code == 202, (path, response.text)
        response = await client.post(f"{API}{path}", json={"email": f"{unique()}@example.com"})
        assert_rate_limited(response, 3600)


# --- shared between workers, and the embedded default -------------------------------------------


async def test_two_app_instances_share_the_counts(stack):
    one, two = await stack.app(), await stack.app()  # same Redis, same key prefix: two workers

    # Per username, across addresses: 3 on one worker, 2 on the other, then either says 429.
    name = unique()
    for n, app in enumerate([one, one, one, two, two]):
        assert_failed(await attempt(await stack.client(app, address(n)), name))
    assert_rate_limited(await attempt(await stack.client(one, address(10)), name), 60)
    assert_rate_limited(await attempt(await stack.client(two, address(11)), name), 60)

    # Per address, across usernames.
    on_one, on_two = await stack.client(one, address(20)), await stack.client(two, address(20))
    for client in [on_one, on_one, on_one, on_two, on_two]:
        assert_failed(await attempt(client, unique()))
    assert_rate_limited(await attempt(on_two, unique()), 60)
    assert_rate_limited(await attempt(on_one, unique()), 60)


async def test_embedded_default_limits_login_in_process(tmp_path, monkeypatch):
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "COOKIE_SECURE", "FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="development",
        sqlite_path=tmp_path / "app.db",
        login_rate_limit=f"{LOGIN_LIMIT}/minute",
    )
    assert settings.embedded
    assert settings.redis_url is None
    app = create_app(settings)
    assert (state_of(app)[COOKIES].session, state_of(app)[COOKIES].csrf) == ("session", "csrftoken")
    async with serve(app), client_at(app, UNTRUSTED_PEER, "http://testserver") as client:
        for _ in range(LOGIN_LIMIT):
            assert_failed(await attempt(client, unique()))
        assert_rate_limited(await attempt(client, unique()), 60)

        name = unique()
        for n in range(LOGIN_LIMIT):
            async with client_at(app, address(n), "http://testserver") as other:
                assert_failed(await attempt(other, name))
        async with client_at(app, address(50), "http://testserver") as other:
            assert_rate_limited(await attempt(other, name), 60)


# --- the security log ---------------------------------------------------------------------------


async def test_a_rate_limited_request_is_logged_as_a_security_event(stack, caplog):
    caplog.set_level(logging.INFO, logger="app.audit")
    app = await stack.app()
    client = await stack.client(app, UNTRUSTED_PEER)
    for _ in range(LOGIN_LIMIT):
        assert_failed(await attempt(client, unique()))
    assert not [r for r in caplog.records if getattr(r, "event", None) == "rate_limited"]

    assert_rate_limited(await attempt(client, unique()), 60)
    events = [
        r for r in caplog.records if r.name == "app.audit" and getattr(r, "event", None) == "rate_limited"
    ]
    assert len(events) == 1
    assert events[0].ip == UNTRUSTED_PEER
    assert WRONG not in caplog.text
