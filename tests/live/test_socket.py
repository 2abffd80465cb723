"""WebSocket /api/v1/ws, one worker (API.md section 7): the session's app behind an
in-process uvicorn, so that a test can also reach inside it (its hub, its sessionmaker)."""

import asyncio
import json
import time

import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from app.auth.cookies import COOKIES
from app.auth.sessions import SESSION_STORE
from app.db import SESSIONMAKER, transaction
from app.items import service as items_service
from app.items.schemas import ItemCreate
from app.live.events import ItemEvent
from app.live.hub import CLOSE_REVOKED, CLOSE_TOO_SLOW, HUB, MAX_SOCKETS_PER_USER
from app.state import state_of
from tests.fixtures.client import API, ApiClient, login, register, unique
from tests.live.conftest import cookie_of
from tests.live.helpers import (
    assert_logout_closes,
    close_code,
    create_item,
    delete_item,
    expect_event,
    expect_marker,
    filler_item,
    next_event,
    open_socket,
    refused_status,
    server_side,
    update_item,
)


@pytest.fixture
def admin(make_admin):
    async def make() -> ApiClient:
        client, _ = await make_admin()
        return client

    return make


# ----------------------------------------------------------------------------- admission


async def test_a_foreign_origin_is_refused_with_403(app: FastAPI, served: str, logged_in):
    client = await logged_in()
    for origin in ("https://evil.example", "null", served.replace("127.0.0.1", "localhost")):
        assert await refused_status(served, cookie=cookie_of(app, client), origin=origin) == 403


async def test_the_own_origin_and_no_origin_are_accepted(app: FastAPI, served: str, logged_in):
    client = await logged_in()
    for origin in ("own", None, served.upper() + "/"):  # compared as the CSRF check does
        async with await open_socket(served, cookie=cookie_of(app, client), origin=origin) as ws:
            item = await create_item(client)
            await expect_event(ws, "item.created", item)


async def test_a_missing_or_unknown_session_is_refused_with_403(app: FastAPI, served: str):
    assert await refused_status(served, cookie=None) == 403
    assert await refused_status(served, cookie=f"{state_of(app)[COOKIES].session}=not-a-token") == 403


async def test_a_personal_access_token_does_not_open_a_socket(served: str, logged_in):
    # API.md section 11: the socket names no scope, so no token reaches it; a browser's
    # cookie does (tests above). A token of every scope, sent as a script would.
    client = await logged_in()
    response = await client.post(
        f"{API}/users/me/tokens", json={"name": "ws", "scopes": ["profile:read", "items:read", "items:write"]}
    )
    assert response.status_code == 201, response.text
    authorization = f"Bearer {response.json()['token']}"
    assert await refused_status(served, cookie=None, authorization=authorization) == 403


async def test_the_refusal_carries_the_error_envelope(served: str):
    with pytest.raises(InvalidStatus) as refused:
        await connect(served.replace("http", "ws") + f"{API}/ws", open_timeout=5)
    response = refused.value.response
    assert response.status_code == 403
    assert json.loads(response.body)["error"]["code"] == "not_authenticated"


async def test_one_user_cannot_hold_more_than_twenty_sockets(app: FastAPI, served: str, logged_in):
    client, other = await logged_in(), await logged_in()
    opened = [await open_socket(served, cookie=cookie_of(app, client)) for _ in range(MAX_SOCKETS_PER_USER)]
    try:
        assert await refused_status(served, cookie=cookie_of(app, client)) == 429
        # Someone else is not affected, and a closed socket frees a place.
        async with await open_socket(served, cookie=cookie_of(app, other)):
            pass
        await opened.pop().close()
        await asyncio.sleep(0.2)  # the server notices the close
        opened.append(await open_socket(served, cookie=cookie_of(app, client)))
    finally:
        for ws in opened:
            await ws.close()


async def test_a_logged_out_session_cannot_open_a_socket(app: FastAPI, served: str, logged_in):
    client = await logged_in()
    cookie = cookie_of(app, client)
    assert (await client.post(f"{API}/auth/logout")).status_code == 200
    assert await refused_status(served, cookie=cookie) == 403


# ----------------------------------------------------------------------------- visibility


async def test_a_private_item_reaches_its_owner_and_admins_only(app: FastAPI, served: str, logged_in, admin):
    owner, other, boss = await logged_in(), await logged_in(), await admin()
    async with (
        await open_socket(served, cookie=cookie_of(app, owner)) as mine,
        await open_socket(served, cookie=cookie_of(app, other)) as theirs,
        await open_socket(served, cookie=cookie_of(app, boss)) as admins,
    ):
        secret = await create_item(owner, is_private=True)
        await expect_event(mine, "item.created", secret)
        await expect_event(admins, "item.created", secret)
        await expect_marker(theirs, owner)  # the private item was never sent to them


async def test_updates_and_deletes_reach_who_may_see_the_item(app: FastAPI, served: str, logged_in):
    owner, other = await logged_in(), await logged_in()
    async with (
        await open_socket(served, cookie=cookie_of(app, owner)) as mine,
        await open_socket(served, cookie=cookie_of(app, other)) as theirs,
    ):
        item = await create_item(owner)
        changed = await update_item(owner, item["id"], title="renamed")
        await delete_item(owner, item["id"])
        for ws in (mine, theirs):
            await expect_event(ws, "item.created", item)
            await expect_event(ws, "item.updated", changed)
            await expect_event(ws, "item.deleted", changed)


async def test_deleting_a_user_deletes_their_items_on_every_page(
    app: FastAPI, served: str, logged_in, make_client, admin
):
    owner, watcher, boss = make_client(), await logged_in(), await admin()
    account = await register(owner)
    await login(owner, account)
    async with await open_socket(served, cookie=cookie_of(app, watcher)) as theirs:
        shown = await create_item(owner)
        secret = await create_item(owner, is_private=True)
        await expect_event(theirs, "item.created", shown)
        response = await boss.delete(f"{API}/admin/users/{account.id}")
        assert response.status_code == 204
        # Only what the watcher could see; the private item was never theirs to drop.
        await expect_event(theirs, "item.deleted", shown)
        await expect_marker(theirs, watcher)
    assert (await watcher.get(f"{API}/items/{secret['id']}")).status_code == 404


async def test_an_item_turning_private_is_deleted_for_those_who_lose_sight_of_it(
    app: FastAPI, served: str, logged_in
):
    owner, other = await logged_in(), await logged_in()
    async with (
        await open_socket(served, cookie=cookie_of(app, owner)) as mine,
        await open_socket(served, cookie=cookie_of(app, other)) as theirs,
    ):
        item = await create_item(owner, description="public text")
        hidden = await update_item(owner, item["id"], is_private=True, description="secret text")
        await expect_event(mine, "item.created", item)
        await expect_event(mine, "item.updated", hidden)
        await expect_event(theirs, "item.created", item)
        # What they could see, never the new (private) content.
        await expect_event(theirs, "item.deleted", item)
        # Turning public again: an update for everyone who may now see it.
        shown = await update_item(owner, item["id"], is_private=False)
        await expect_event(theirs, "item.updated", shown)
        await expect_event(mine, "item.updated", shown)


async def test_changes_to_a_private_item_never_reach_another_user(app: FastAPI, served: str, logged_in):
    owner, other = await logged_in(), await logged_in()
    async with await open_socket(served, cookie=cookie_of(app, other)) as theirs:
        secret = await create_item(owner, is_private=True)
        await update_item(owner, secret["id"], title="still secret")
        await delete_item(owner, secret["id"])
        await expect_marker(theirs, owner)


async def test_a_rolled_back_change_publishes_nothing(app: FastAPI, served: str, logged_in):
    client = await logged_in()
    active = await state_of(app)[SESSION_STORE].read(client.session_token)
    assert active is not None
    owner = active.user
    assert owner is not None

    async def create_then_fail() -> None:
        # The real service in a request's unit of work, failing after it registered its event.
        async with transaction(state_of(app)[SESSIONMAKER]) as session:
            await items_service.create_item(session, ItemCreate(title=unique("rolled-back-")), owner)
            raise RuntimeError("before the commit")

    async with await open_socket(served, cookie=cookie_of(app, client)) as ws:
        with pytest.raises(RuntimeError, match="before the commit"):
            await create_then_fail()
        await expect_marker(ws, client)


# ----------------------------------------------------------------------------- revocation


async def test_logout_closes_the_socket_with_4401_within_two_seconds(app: FastAPI, served: str, logged_in):
    client = await logged_in()
    async with await open_socket(served, cookie=cookie_of(app, client)) as ws:
        await assert_logout_closes(ws, client)


async def test_refresh_closes_nothing_the_socket_belongs_to_the_login(app: FastAPI, served: str, logged_in):
    client = await logged_in()
    async with await open_socket(served, cookie=cookie_of(app, client)) as ws:
        assert (await client.post(f"{API}/auth/refresh")).status_code == 200
        item = await create_item(client)  # with the new session
        await expect_event(ws, "item.created", item)


async def test_a_login_that_ended_unannounced_is_closed_by_the_sweep(app: FastAPI, served: str, logged_in):
    # As if its revocation had been published while this worker was not subscribed.
    client = await logged_in()
    store, hub = state_of(app)[SESSION_STORE], state_of(app)[HUB]
    active = await store.read(client.session_token)
    async with await open_socket(served, cookie=cookie_of(app, client)) as ws:
        await expect_marker(ws, client)
        await store.redis.delete(f"{store.prefix}f:{active.login_id}")
        await hub.check_logins(store.live_logins)
        code, _ = await close_code(ws)
        assert code == CLOSE_REVOKED


# ----------------------------------------------------------------------------- slow clients


async def test_a_client_too_far_behind_is_closed_with_4408_and_others_keep_up(
    app: FastAPI, served: str, logged_in, monkeypatch: pytest.MonkeyPatch
):
    hub = state_of(app)[HUB]
    monkeypatch.setattr(hub, "queue_size", 8)  # for the sockets opened from now on
    client = await logged_in()
    cookie = cookie_of(app, client)
    async with (
        await open_socket(
            served, cookie=cookie, receive_buffer=4096, max_queue=1, compression=None
        ) as stalled,
        await open_socket(served, cookie=cookie) as healthy,
    ):
        slow = server_side(hub, stalled)
        # Large events straight into the hub, as if from Redis: the kernel's buffers
        # fill after a few megabytes, then the stalled socket's queue.
        owner = (await client.get(f"{API}/users/me")).json()["id"]
        filler = filler_item(owner)
        for _ in range(200):
            hub.deliver(ItemEvent("item.created", filler))
            await asyncio.sleep(0.01)
            if slow.ended:
                break
        assert slow.close_code == CLOSE_TOO_SLOW
        assert slow not in hub.sockets
        # The healthy socket was never held up: it has every filler, then the next item.
        item = await create_item(client)
        while (event := await next_event(healthy))["item"]["id"] == 0:
            pass
        assert event == {"type": "item.created", "item": item}
        # Reading again, the stalled client gets what was already on its way, then the code.
        code, _ = await close_code(stalled, timeout=10)
        assert code == CLOSE_TOO_SLOW


async def test_a_send_stalled_past_the_timeout_closes_the_socket_with_4408(
    app: FastAPI, served: str, logged_in, monkeypatch: pytest.MonkeyPatch
):
    hub = state_of(app)[HUB]
    monkeypatch.setattr(hub, "queue_size", 10_000)  # never full here: the watchdog acts first
    monkeypatch.setattr(hub, "send_timeout", 0.5)
    client = await logged_in()
    async with await open_socket(
        served, cookie=cookie_of(app, client), receive_buffer=4096, max_queue=1, compression=None
    ) as stalled:
        slow = server_side(hub, stalled)
        owner = (await client.get(f"{API}/users/me")).json()["id"]
        filler = filler_item(owner)
        for _ in range(40):  # more than the kernel's buffers take
            hub.deliver(ItemEvent("item.created", filler))
        started = time.monotonic()
        while not slow.ended:
            assert time.monotonic() - started < 5, "the stalled send was never given up on"
            await asyncio.sleep(0.05)
        assert slow.close_code == CLOSE_TOO_SLOW
        assert slow.queue.empty()  # what it had not received is dropped with it
        code, _ = await close_code(stalled, timeout=10)
        assert code == CLOSE_TOO_SLOW


async def test_the_socket_count_is_in_metrics(app: FastAPI, served: str, logged_in, make_client):
    client = await logged_in()

    async def count() -> float:
        text = (await make_client().get("/metrics")).text
        (line,) = [x for x in text.splitlines() if x.startswith("websocket_connections_active ")]
        return float(line.split()[1])

    before = await count()
    async with await open_socket(served, cookie=cookie_of(app, client)) as ws:
        await expect_marker(ws, client)
        assert await count() == before + 1
    for _ in range(100):
        if await count() == before:
            break
        await asyncio.sleep(0.02)
    assert await count() == before


async def test_deleting_your_account_closes_your_socket_and_drops_your_items_elsewhere(
    app: FastAPI, served: str, logged_in
):
    owner, watcher = await logged_in(), await logged_in()
    async with (
        await open_socket(served, cookie=cookie_of(app, owner)) as mine,
        await open_socket(served, cookie=cookie_of(app, watcher)) as theirs,
    ):
        shown = await create_item(owner)
        await expect_event(theirs, "item.created", shown)
        closing = asyncio.create_task(close_code(mine))
        assert (await owner.delete(f"{API}/users/me")).status_code == 204
        code, _ = await closing
        assert code == CLOSE_REVOKED
        await expect_event(theirs, "item.deleted", shown)
