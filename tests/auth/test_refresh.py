"""API.md sections 2 and 3: the refresh cookie, rotation, absolute lifetime, reuse."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from app.main import create_app
from tests.auth.helpers import attributes, set_cookies
from tests.conftest import client_factory, make_settings, running
from tests.fixtures.client import API, login, register

REFRESH = "__Secure-refresh"


def cookie_value(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]


async def me(client, session_token: str | None = None) -> int:
    headers = {"Cookie": f"__Host-session={session_token}"} if session_token else None
    return (await client.get(f"{API}/users/me", headers=headers)).status_code


async def refresh_with(client, refresh_token: str):
    """POST /auth/refresh presenting exactly this refresh token (as a stale tab would)."""
    csrf = await client.csrf_token()
    cookie = f"{REFRESH}={refresh_token}; __Host-csrftoken={csrf}"
    if client.session_token:
        cookie += f"; __Host-session={client.session_token}"
    return await client.post(f"{API}/auth/refresh", headers={"X-CSRF-Token": csrf, "Cookie": cookie})


async def test_login_sets_a_strict_refresh_cookie_scoped_to_the_auth_routes(make_client, settings):
    client = make_client()
    response = await login(client, await register(client))
    flags = attributes(set_cookies(response)[REFRESH])
    assert "httponly" in flags
    assert "secure" in flags
    assert flags["path"] == "/api/v1/auth"
    assert flags["samesite"] == "Strict"
    assert "domain" not in flags
    assert settings.refresh_token_seconds - 5 <= int(flags["max-age"]) <= settings.refresh_token_seconds


async def test_refresh_rotates_both_tokens_and_revokes_the_old_pair(user, make_client):
    client, _ = user
    old_session, old_refresh = client.session_token, client.cookies.get(REFRESH)
    response = await client.post(f"{API}/auth/refresh")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"csrf_token", "expires_in"}
    cookies = set_cookies(response)
    assert {"__Host-session", REFRESH, "__Host-csrftoken"} <= set(cookies)
    assert body["csrf_token"] == cookie_value(cookies["__Host-csrftoken"])
    assert client.session_token != old_session
    assert client.cookies.get(REFRESH) != old_refresh
    assert await me(client) == 200
    assert await me(make_client(), old_session) == 401
    assert response.headers["cache-control"] == "no-store"


async def test_refresh_needs_csrf_and_a_refresh_cookie(user, make_client):
    client, _ = user
    response = await client.post(f"{API}/auth/refresh", csrf=False)
    assert response.status_code == 403
    anonymous = make_client()
    response = await anonymous.post(f"{API}/auth/refresh")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_refresh_token"


async def test_garbage_refresh_token_is_401_and_clears_the_cookies(make_client):
    client = make_client()
    response = await refresh_with(client, "not-a-token")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_refresh_token"
    assert attributes(set_cookies(response)[REFRESH])["max-age"] == "0"


async def test_rotated_token_within_grace_changes_nothing(user):
    client, _ = user
    old_refresh = client.cookies.get(REFRESH)
    assert (await client.post(f"{API}/auth/refresh")).status_code == 200
    current_session = client.session_token
    response = await refresh_with(client, old_refresh)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_refresh_token"
    assert "set-cookie" not in response.headers  # not even the cookies
    assert await me(client, current_session) == 200
    assert (await client.post(f"{API}/auth/refresh")).status_code == 200  # the new chain goes on


async def test_two_tabs_refreshing_at_once_stay_logged_in(user, make_client):
    client, account = user
    token = client.cookies.get(REFRESH)
    session = client.session_token
    tabs = [make_client() for _ in range(5)]
    csrf = await client.csrf_token()

    async def tab_refresh(tab):
        return await tab.post(
            f"{API}/auth/refresh",
            headers={
                "X-CSRF-Token": csrf,
                "Cookie": f"{REFRESH}={token}; __Host-csrftoken={csrf}; __Host-session={session}",
            },
        )

    responses = await asyncio.gather(*(tab_refresh(tab) for tab in tabs))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 401, 401, 401, 401]  # at most one rotation per token
    winner = next(r for r in responses if r.status_code == 200)
    new_session = cookie_value(set_cookies(winner)["__Host-session"])
    assert await me(make_client(), new_session) == 200
    for loser in (r for r in responses if r.status_code == 401):
        assert "set-cookie" not in loser.headers
    sessions = await login(make_client(), account)  # the account itself is untouched
    assert sessions.status_code == 200


@pytest.fixture(scope="module")
async def short_grace_app(database_url: str, redis_prefix: str) -> AsyncIterator:
    settings = make_settings(database_url, redis_prefix, refresh_reuse_grace_seconds=1)
    async for app in running(create_app(settings)):
        yield app


async def test_rotated_token_replayed_after_grace_revokes_that_login_only(short_grace_app):
    factory = client_factory(short_grace_app)
    async with factory() as client, factory() as other_device:
        account = await register(client)
        await login(client, account)
        await login(other_device, account)
        stolen = client.cookies.get(REFRESH)
        assert (await client.post(f"{API}/auth/refresh")).status_code == 200
        rotated_session = client.session_token
        await asyncio.sleep(1.2)
        response = await refresh_with(factory(), stolen)
        assert response.status_code == 401
        assert attributes(set_cookies(response)["__Host-session"])["max-age"] == "0"
        # The session the rotation produced is revoked, and its refresh token too...
        assert await me(client, rotated_session) == 401
        assert (await client.post(f"{API}/auth/refresh")).status_code == 401
        # ...and no other login of the user.
        assert (await other_device.get(f"{API}/users/me")).status_code == 200


@pytest.fixture(scope="module")
async def short_login_app(database_url: str, redis_prefix: str) -> AsyncIterator:
    # A login of 2 days whose clock we cannot wind: check the arithmetic instead.
    settings = make_settings(database_url, redis_prefix, refresh_token_expire_days=2)
    async for app in running(create_app(settings)):
        yield app


async def test_rotation_never_extends_the_absolute_lifetime(short_login_app):
    async with client_factory(short_login_app)() as client:
        account = await register(client)
        response = await login(client, account)
        first = int(attributes(set_cookies(response)[REFRESH])["max-age"])
        started = time.monotonic()
        await asyncio.sleep(1.1)
        response = await client.post(f"{API}/auth/refresh")
        assert response.status_code == 200
        second = int(attributes(set_cookies(response)[REFRESH])["max-age"])
        elapsed = time.monotonic() - started
        assert second <= first - int(elapsed)  # counted from the login, not from the refresh


async def test_logout_revokes_the_refresh_token_too(user, make_client):
    client, _ = user
    refresh_token = client.cookies.get(REFRESH)
    assert (await client.post(f"{API}/auth/logout")).status_code == 200
    response = await refresh_with(make_client(), refresh_token)
    assert response.status_code == 401


async def test_login_revokes_the_refresh_token_it_was_sent(make_client):
    client = make_client()
    account = await register(client)
    await login(client, account)
    old_refresh = client.cookies.get(REFRESH)
    await login(client, account)
    response = await refresh_with(make_client(), old_refresh)
    assert response.status_code == 401


async def keys_under(redis, prefix: str) -> set[str]:
    return {key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)}


async def test_rotations_keep_nothing_behind_and_logout_leaves_no_record(user, redis, settings):
    # Each rotation used to leave a rotated-token record alive for the login's whole
    # lifetime, logout included: a client refreshing in a loop grew Redis without bound.
    client, account = user
    prefix = settings.redis_key_prefix
    (login_id,) = await redis.smembers(f"{prefix}uf:{account.id}")
    before = await keys_under(redis, prefix)
    for _ in range(9):
        assert (await client.post(f"{API}/auth/refresh")).status_code == 200
    grown = await keys_under(redis, prefix) - before
    assert len(grown) == 1, grown  # the live session token, which replaced the first one
    assert (await client.post(f"{API}/auth/logout")).status_code == 200
    after = await keys_under(redis, prefix)
    assert not after - before, after - before
    assert f"{prefix}f:{login_id}" not in after
    assert not await redis.smembers(f"{prefix}uf:{account.id}")


async def test_a_login_refreshing_past_its_rate_limit_gets_429_and_stays_logged_in(
    user, make_client, settings
):
    client, account = user
    other_device = make_client()
    await login(other_device, account)
    allowed = int(settings.refresh_rate_limit.split("/")[0])
    for _ in range(allowed):
        assert (await client.post(f"{API}/auth/refresh")).status_code == 200
    session = client.session_token
    response = await client.post(f"{API}/auth/refresh")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert "set-cookie" not in response.headers
    assert await me(client, session) == 200  # refused, not logged out
    assert (await other_device.post(f"{API}/auth/refresh")).status_code == 200  # per login


async def test_two_refresh_cookies_are_refused_and_change_nothing(user, make_client):
    # An attacker on a sibling subdomain can plant `__Secure-refresh` with Domain=; the
    # browser then sends both. Neither is trusted: reading the last one swapped accounts.
    victim, _ = user
    attacker = make_client()
    await login(attacker, await register(attacker))
    planted, own = attacker.cookies.get(REFRESH), victim.cookies.get(REFRESH)
    csrf = await victim.csrf_token()
    for pair in ((planted, own), (own, planted)):
        response = await victim.post(
            f"{API}/auth/refresh",
            headers={
                "X-CSRF-Token": csrf,
                "Cookie": f"{REFRESH}={pair[0]}; {REFRESH}={pair[1]}; __Host-csrftoken={csrf}; "
                f"__Host-session={victim.session_token}",
            },
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_refresh_token"
        assert "__Host-session" not in set_cookies(response)
    assert await me(victim) == 200
    assert (await attacker.post(f"{API}/auth/refresh")).status_code == 200  # not rotated either


async def test_a_refresh_token_of_another_login_than_the_session_cookie_is_refused(user, make_client):
    victim, victim_account = user
    attacker = make_client()
    await login(attacker, await register(attacker))
    planted = attacker.cookies.get(REFRESH)
    response = await refresh_with(victim, planted)  # with the victim's session cookie
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_refresh_token"
    assert "set-cookie" not in response.headers
    profile = await victim.get(f"{API}/users/me")
    assert profile.json()["id"] == victim_account.id
    assert (await attacker.post(f"{API}/auth/refresh")).status_code == 200  # its owner's login goes on
