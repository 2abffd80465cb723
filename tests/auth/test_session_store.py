"""API.md section 2: the server-side record lives in Redis, keyed by a hash of the token."""

import hashlib
import time
from types import SimpleNamespace

import pytest

from app.auth.sessions import SESSION_STORE, deadline, redis_store
from app.state import state_of
from tests.fixtures.client import API, login, register


async def keys(redis, prefix: str) -> list[str]:
    return [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]


async def test_redis_never_holds_the_raw_token(user, redis, redis_prefix):
    client, account = user
    token = client.session_token
    assert token
    for key in await keys(redis, redis_prefix):
        assert token not in key
        kind = await redis.type(key)
        if kind == "hash":
            values = await redis.hgetall(key)
            assert all(token not in str(v) for v in [*values, *values.values()])
        elif kind == "string":
            assert token not in (await redis.get(key) or "")


async def test_record_is_keyed_by_the_hash_with_the_cookies_lifetime(user, redis, redis_prefix, settings):
    client, account = user
    key = f"{redis_prefix}s:{hashlib.sha256(client.session_token.encode()).hexdigest()}"
    record = await redis.hgetall(key)
    assert record["uid"] == str(account.id)
    ttl = await redis.ttl(key)
    assert settings.access_token_seconds - 5 <= ttl <= settings.access_token_seconds


async def test_deleting_the_record_ends_the_session_at_once(user, redis, redis_prefix):
    client, _ = user
    key = f"{redis_prefix}s:{hashlib.sha256(client.session_token.encode()).hexdigest()}"
    assert (await client.get(f"{API}/users/me")).status_code == 200
    await redis.delete(key)
    assert (await client.get(f"{API}/users/me")).status_code == 401


async def test_every_session_of_a_user_is_in_its_index(user, make_client, app):
    client, account = user
    other = make_client(headers={"User-Agent": "second-browser"})
    await login(other, account)
    sessions = await state_of(app)[SESSION_STORE].list_user(account.id)
    assert len(sessions) == 2
    assert {s.user_agent for s in sessions} >= {"second-browser"}
    assert all(client.session_token not in s.id for s in sessions)
    assert await state_of(app)[SESSION_STORE].revoke_user(account.id) == 2
    assert (await client.get(f"{API}/users/me")).status_code == 401
    assert (await other.get(f"{API}/users/me")).status_code == 401


async def test_malformed_session_cookies_are_401_never_5xx(make_client):
    client = make_client()
    for value in (
        b"",
        b"x",
        b"a" * 4096,
        b"%00",
        "\xe9-non-ascii".encode("latin-1"),
        b'"quoted"',
        b"a;b",
        b"\xff\xfe",
    ):
        response = await client.get(f"{API}/users/me", headers={"Cookie": b"__Host-session=" + value})
        assert response.status_code == 401, value
    # Past the header limit it is refused before anything parses it (tests/test_headers.py).
    response = await client.get(f"{API}/users/me", headers={"Cookie": b"__Host-session=" + b"a" * 8192})
    assert response.status_code == 431


@pytest.mark.parametrize("skew", [30, -30], ids=["host-ahead", "host-behind"])
async def test_a_host_clock_apart_from_redis_does_not_stop_logins_or_refreshes(
    make_client, monkeypatch, skew
):
    # The deadline of a login or a refresh is checked on Redis's clock; the store keeps its
    # estimate of that clock from Redis's own replies, so 30 s of difference either way
    # changes nothing: no call is taken for late.
    real_time = time.time
    clock = SimpleNamespace(time=lambda: real_time() + skew)
    monkeypatch.setattr(deadline, "time", clock)
    monkeypatch.setattr(redis_store, "time", clock)
    client = make_client()
    await login(client, await register(client))
    assert (await client.post(f"{API}/auth/refresh")).status_code == 200
    assert (await client.get(f"{API}/users/me")).status_code == 200
