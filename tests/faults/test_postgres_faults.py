"""PostgreSQL refusing or hanging: fail closed, say so, heal by itself (pool_pre_ping, timeouts).

Security notes §4.8 F3, F4 and F5. The shared server is never touched: the app reaches it
through a relay (tests/faults/relay.py) that the test switches to `refuse` or `hang`.
"""

from functools import partial

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from app.auth.cookies import COOKIES
from app.db import ENGINE
from app.main import create_app
from app.state import state_of
from tests.conftest import client_factory, make_settings
from tests.faults.helpers import (
    all_at_once,
    assert_all_unavailable,
    assert_outage_answered,
    assert_unavailable,
    create_item,
    eventually,
    list_items,
    login_as,
    me,
    register_new,
    serving,
    sets_session_cookie,
    timed,
)
from tests.fixtures.client import API, PASSWORD, login, register

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fault", ["refuse", "hang"])
async def test_postgres_unreachable_fails_closed_then_recovers_without_a_restart(stack, fault):
    session_cookie = state_of(stack.app)[COOKIES].session
    user = stack.client()
    await login(user, await register(user))
    visitor = stack.client()
    account = await register(visitor)
    await visitor.csrf_token()
    guesser = stack.client()
    await guesser.csrf_token()
    newcomer = stack.client()
    await newcomer.csrf_token()
    anonymous = stack.client()
    # Pooled connections now exist: the fault has to be noticed on them, not only on new ones.
    assert (await create_item(user)).status_code == 201
    assert (await list_items(anonymous)).status_code == 200

    await stack.relay.set_mode(fault)

    results = await all_at_once(
        {
            "GET /items (anonymous)": list_items(anonymous),
            "GET /items (user)": list_items(user),
            "POST /items": create_item(user),
            "login": login_as(visitor, account),
            # The database cannot say the password is wrong: never `invalid_credentials` now.
            "login with a wrong password": login_as(guesser, account, password="not-the-password-at-all"),
            "register": register_new(newcomer, PASSWORD),
            "GET /health": stack.client().get("/health"),
        }
    )
    await assert_outage_answered(results, "db", session_cookie, stack.client())
    # Who-am-I needs no database: the session and the user's snapshot both live in Redis.
    mine, elapsed = await timed(me(user))
    assert mine.status_code == 200, mine.text
    assert elapsed < 1

    await stack.relay.set_mode("forward")

    # The same app process: pool_pre_ping replaces the connections the fault broke.
    await eventually(lambda: stack.client().get("/health"), 200, "GET /health")
    await eventually(lambda: list_items(anonymous), 200, "GET /items (anonymous)")
    await eventually(lambda: list_items(user), 200, "GET /items (user)")
    await eventually(lambda: create_item(user), 201, "POST /items")
    relogin = await eventually(lambda: login_as(visitor, account), 200, "login")
    assert sets_session_cookie(relogin, session_cookie)
    wrong = await eventually(
        lambda: login_as(guesser, account, password="not-the-password-at-all"),
        401,
        "login with a wrong password",
    )
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    await eventually(lambda: register_new(newcomer, PASSWORD), 201, "register")


async def test_postgres_hanging_in_the_middle_of_a_request_is_503_within_5_seconds(stack):
    user = stack.client()
    await login(user, await register(user))
    anonymous = stack.client()
    assert (await list_items(anonymous)).status_code == 200

    # Hang just after the pool hands out a connection that passed its pre-ping: the request's
    # own statement is what hangs, then the rollback after it.
    engine = state_of(stack.app)[ENGINE].sync_engine

    def hang_on_checkout(*_args: object) -> None:
        stack.relay.hang_now()

    event.listen(engine, "checkout", hang_on_checkout)
    try:
        results = await all_at_once({"GET /items": list_items(anonymous), "POST /items": create_item(user)})
    finally:
        event.remove(engine, "checkout", hang_on_checkout)
    assert_all_unavailable(results)

    await stack.relay.set_mode("forward")

    await eventually(lambda: list_items(anonymous), 200, "GET /items")
    await eventually(lambda: create_item(user), 201, "POST /items")


async def test_postgres_hanging_under_more_requests_than_the_pool_holds(make_stack):
    # One connection for four requests: three wait for the pool while the first waits on PostgreSQL.
    stack = await make_stack(db_pool_size=1, db_max_overflow=0)
    callers = [stack.client() for _ in range(4)]
    assert (await list_items(callers[0])).status_code == 200

    await stack.relay.set_mode("hang")

    results = await all_at_once({f"GET /items #{n}": list_items(c) for n, c in enumerate(callers)})
    assert_all_unavailable(results)

    await stack.relay.set_mode("forward")

    for n, caller in enumerate(callers):
        await eventually(partial(list_items, caller), 200, f"GET /items #{n}")


async def test_a_statement_postgres_cancels_for_taking_too_long_is_503_not_500(stack, database_url):
    # PostgreSQL answers but this statement waits on a row lock held elsewhere (a stuck
    # transaction, a long migration): to the caller that is PostgreSQL hanging.
    user = stack.client()
    await login(user, await register(user))
    created = await create_item(user)
    assert created.status_code == 201
    item_id = created.json()["id"]

    holder = await asyncpg.connect(database_url)  # our own test database, straight to the server
    try:
        locking = holder.transaction()
        await locking.start()
        await holder.execute("SELECT id FROM item WHERE id = $1 FOR UPDATE", item_id)
        response, elapsed = await timed(user.put(f"{API}/items/{item_id}", json={"title": "renamed"}))
        await locking.rollback()
    finally:
        await holder.close()
    assert_unavailable(response, elapsed, "PUT /items/{id} behind a row lock")

    renamed = await eventually(
        lambda: user.put(f"{API}/items/{item_id}", json={"title": "renamed"}), 200, "PUT /items/{id}"
    )
    assert renamed.json()["title"] == "renamed"


async def test_a_database_host_that_does_not_resolve_is_503(database_url, redis_prefix, throwaway_redis):
    # A stopped compose service's name stops resolving: asyncpg raises socket.gaierror, raw.
    unresolvable = make_url(database_url).set(host="postgres.invalid")
    settings = make_settings(
        unresolvable.render_as_string(hide_password=False), redis_prefix, redis_url=throwaway_redis.url
    )
    app = create_app(settings)
    async with serving(app), client_factory(app)() as client:
        results = await all_at_once({"GET /items": list_items(client), "GET /health": client.get("/health")})
        assert_all_unavailable(results)
        health, _elapsed = results["GET /health"]
        assert health.json()["error"]["details"] == {"db": "unavailable"}
