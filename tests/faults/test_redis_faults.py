"""Redis (sessions, and the login limiter) down or hanging: fail closed, say so, heal by itself.

Security notes §4.8 F1, F3 and F5, on a redis-server the test owns (tests/faults/conftest.py).
"""

import asyncio
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.auth.cookies import COOKIES
from app.auth.principal import Assurance, SessionUser
from app.auth.sessions import SESSION_STORE, deadline, redis_store
from app.auth.sessions.types import RefreshLimit
from app.state import SETTINGS, state_of
from tests.faults.helpers import (
    all_at_once,
    assert_all_unavailable,
    assert_outage_answered,
    create_item,
    eventually,
    login_as,
    logout,
    me,
    refresh,
    sets_session_cookie,
    timed,
)
from tests.fixtures.client import API, login, register

pytestmark = pytest.mark.slow


async def test_redis_stopped_fails_closed_then_serves_again_after_a_restart(stack):
    session_cookie = state_of(stack.app)[COOKIES].session
    user = stack.client()
    await login(user, await register(user))
    visitor = stack.client()
    account = await register(visitor)  # the visitor will try to log in as this one
    await visitor.csrf_token()

    stack.redis.stop()

    results = await all_at_once(
        {
            "GET /users/me": me(user),
            "POST /items": create_item(user),
            "POST /auth/logout": logout(user),
            "POST /auth/refresh": refresh(user),
            "login": login_as(visitor, account),
            "GET /health": stack.client().get("/health"),
        }
    )
    # Never 401 (a silent logout), never 200 (a session nobody can check), never 500.
    await assert_outage_answered(results, "redis", session_cookie, stack.client())
    assert visitor.session_token is None
    # A 503 clears no cookie (that would be a logout): the user can retry either call later.
    for what in ("POST /auth/logout", "POST /auth/refresh"):
        response, _elapsed = results[what]
        assert not response.headers.get_list("set-cookie"), what
    assert user.session_token is not None

    await stack.redis.restart()

    await eventually(lambda: stack.client().get("/health"), 200, "GET /health")
    # This Redis persists nothing, so the session died with it: 401 is the truth now, not a
    # silent logout (the hang test shows a session that survives its outage keeps working).
    gone, _elapsed = await timed(me(user))
    assert gone.status_code == 401, gone.text
    relogin = await eventually(lambda: login_as(visitor, account), 200, "login")
    assert sets_session_cookie(relogin, session_cookie)
    assert (await me(visitor)).status_code == 200


def compose_redis_persistence() -> tuple[str, ...]:
    """The arguments docker-compose.yml gives its redis-server (the append-only file, the
    memory cap), with `${VAR:-default}` read as compose reads it with VAR unset."""
    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
    command = compose["services"]["redis"]["command"]
    assert command[0] == "redis-server"
    return tuple(re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", argument) for argument in command[1:])


async def test_with_the_compose_files_persistence_a_redis_restart_logs_no_one_out(stack):
    # The README's promise for the deployment: the same arguments, the same restart.
    stack.redis.persistence = compose_redis_persistence()
    await stack.redis.restart()
    await eventually(lambda: stack.client().get("/health"), 200, "GET /health")
    user = stack.client()
    await login(user, await register(user))

    await stack.redis.restart()

    await eventually(lambda: stack.client().get("/health"), 200, "GET /health")
    still, _elapsed = await timed(me(user))
    assert still.status_code == 200, still.text
    assert (await refresh(user)).status_code == 200


@pytest.mark.parametrize("fault", ["stop", "hang"])
async def test_redis_unreachable_refuses_every_login_attempt_even_a_wrong_password(stack, fault):
    # The login limiter counts in Redis: without it, guesses would be unlimited (F2). More
    # attempts than the default LOGIN_RATE_LIMIT of 5/minute, and none is judged.
    visitor = stack.client()
    account = await register(visitor)
    await visitor.csrf_token()

    if fault == "stop":
        stack.redis.stop()
    else:
        stack.redis.hang()

    results = await all_at_once(
        {f"wrong password #{n}": login_as(visitor, account, password=f"guess-{n}-xyz") for n in range(10)}
    )
    assert_all_unavailable(results)


async def test_redis_hung_fails_closed_and_the_same_session_works_after_it_resumes(stack):
    session_cookie = state_of(stack.app)[COOKIES].session
    user = stack.client()
    user_account = await register(user)
    await login(user, user_account)
    # Logout and refresh get sessions of their own: Redis may still run what they sent once it
    # resumes (the bytes wait in its socket buffer), so they may take effect after their 503.
    leaving = stack.client()
    await login(leaving, await register(leaving))
    refreshing = stack.client()
    await login(refreshing, await register(refreshing))
    visitor = stack.client()
    account = await register(visitor)
    await visitor.csrf_token()
    token = user.session_token
    assert (await create_item(user)).status_code == 201
    created = await user.post(f"{API}/users/me/tokens", json={"name": "script", "scopes": ["profile:read"]})
    assert created.status_code == 201, created.text
    bearer = {"Authorization": f"Bearer {created.json()['token']}"}
    script = stack.client()  # no cookie: a script
    assert (await script.get(f"{API}/users/me", headers=bearer)).status_code == 200  # cached

    stack.redis.hang()

    results = await all_at_once(
        {
            "GET /users/me": me(user),
            # A bearer token is checked in Redis too: 503, never "invalid" (a silent revocation).
            "GET /users/me by token": script.get(f"{API}/users/me", headers=bearer),
            "POST /items": create_item(user),
            "POST /auth/logout": logout(leaving),
            "POST /auth/refresh": refresh(refreshing),
            "login": login_as(visitor, account),
            "GET /health": stack.client().get("/health"),
        }
    )
    await assert_outage_answered(results, "redis", session_cookie, stack.client())

    stack.redis.resume()

    # The same cookie, the same app process: nothing was logged out by the outage.
    assert user.session_token == token
    mine = await eventually(lambda: me(user), 200, "GET /users/me")
    assert mine.json()["id"] == user_account.id
    by_token = await eventually(lambda: script.get(f"{API}/users/me", headers=bearer), 200, "by token")
    assert by_token.json()["id"] == user_account.id
    await eventually(lambda: create_item(user), 201, "POST /items")
    await eventually(lambda: login_as(visitor, account), 200, "login")
    await eventually(lambda: stack.client().get("/health"), 200, "GET /health")


@pytest.mark.parametrize("skew", [0, 30, -30], ids=["same-clock", "host-ahead", "host-behind"])
async def test_a_login_or_refresh_that_reaches_redis_too_late_changes_nothing(stack, monkeypatch, skew):
    # Redis stops answering just as a refresh and a login are sent (the store's calls,
    # made here directly: through HTTP, an earlier call of the same request would time
    # out first). They time out (the user gets 503) and wait in Redis's socket buffer.
    # Run when it resumes, just after the client gave up, the rotation would leave this
    # browser's refresh token "already rotated" (a logout the user never asked for) and the
    # login would be one nobody holds, listed among the user's sessions. The deadline is
    # checked on Redis's clock, which this host's may be 30 s ahead of or behind.
    real_time = time.time
    clock = SimpleNamespace(time=lambda: real_time() + skew, monotonic=time.monotonic)
    monkeypatch.setattr(deadline, "time", clock)
    monkeypatch.setattr(redis_store, "time", clock)
    store, settings = state_of(stack.app)[SESSION_STORE], state_of(stack.app)[SETTINGS]
    user = stack.client()
    account = await register(user)
    await login(user, account)
    # A refresh first, as a live deployment will have run one: Redis knows the script (a
    # script it does not know fails at once instead of running late).
    assert (await refresh(user)).status_code == 200
    refresh_token = user.cookies.get("__Secure-refresh")
    assert refresh_token
    snapshot = SessionUser(
        id=account.id,
        email=account.email,
        username=account.username,
        is_active=True,
        is_superuser=False,
        is_verified=False,
        created_at=datetime.now(UTC),
    )

    # Connections the pool already holds: a new one would time out in its handshake,
    # before the command is even written.
    await asyncio.gather(*(store.ping() for _ in range(4)))
    stack.redis.hang()
    sent = time.monotonic()
    late_calls = [
        store.refresh(
            refresh_token,
            session_ttl=settings.access_token_seconds,
            grace=10,
            session=None,
            limit=RefreshLimit(10, 60),
        ),
        store.create(
            snapshot,
            session_ttl=60,
            refresh_ttl=600,
            user_agent="late",
            ip="192.0.2.1",
            assurance=Assurance.password(),
        ),
    ]
    for outcome in await asyncio.gather(*late_calls, return_exceptions=True):
        assert isinstance(outcome, RedisTimeoutError), outcome
    # Resumed just after the client's timeout: the window the old 5 s guard left open.
    await asyncio.sleep(max(0.0, sent + settings.redis_timeout_seconds + 0.3 - time.monotonic()))
    stack.redis.resume()

    # The browser's cookies still work and refresh once, as if nothing had happened.
    await eventually(lambda: me(user), 200, "GET /users/me")
    assert (await refresh(user)).status_code == 200
    sessions = (await user.get(f"{API}/users/me/sessions")).json()
    assert len(sessions) == 1, sessions
    assert sessions[0]["user_agent"] != "late"
