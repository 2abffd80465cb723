"""Two uvicorn processes on one Redis, as two workers of one deployment: what one worker
commits or revokes reaches the sockets of the other (API.md section 7)."""

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection

from app.auth.sessions import SESSION_STORE
from app.live.hub import CLOSE_REVOKED, CLOSE_TOO_SLOW
from app.state import state_of
from tests.fixtures.client import API, PASSWORD, ApiClient
from tests.live.conftest import Deployment, UserFactory, socket_cookie
from tests.live.helpers import (
    REVOCATION_DEADLINE,
    close_code,
    create_item,
    expect_event,
    expect_marker,
    next_event,
    open_socket,
    refused_status,
    update_item,
)

pytestmark = pytest.mark.slow

A, B = 0, 1


def url(deployment: Deployment, worker: int) -> str:
    return deployment.workers[worker].base_url


async def test_an_item_created_through_one_worker_reaches_a_socket_on_the_other(
    deployment: Deployment, make_user: UserFactory
):
    owner, _ = await make_user(A)
    other, _ = await make_user(B)
    async with (
        await open_socket(url(deployment, B), cookie=socket_cookie(owner)) as mine,
        await open_socket(url(deployment, B), cookie=socket_cookie(other)) as theirs,
    ):
        item = await create_item(owner)  # through A
        await expect_event(mine, "item.created", item)
        await expect_event(theirs, "item.created", item)


async def test_a_private_item_never_reaches_another_users_socket(
    deployment: Deployment, make_user: UserFactory
):
    owner, _ = await make_user(A)
    other, _ = await make_user(B)
    boss, _ = await make_user(B, admin=True)
    async with (
        await open_socket(url(deployment, B), cookie=socket_cookie(other)) as theirs,
        await open_socket(url(deployment, A), cookie=socket_cookie(owner)) as mine,
        await open_socket(url(deployment, B), cookie=socket_cookie(boss)) as admins,
    ):
        secret = await create_item(owner, is_private=True)
        changed = await update_item(owner, secret["id"], title="still private")
        await expect_event(mine, "item.created", secret)
        await expect_event(mine, "item.updated", changed)
        await expect_event(admins, "item.created", secret)
        await expect_event(admins, "item.updated", changed)
        await expect_marker(theirs, owner)


async def test_an_item_turning_private_reaches_another_user_as_deleted(
    deployment: Deployment, make_user: UserFactory
):
    owner, _ = await make_user(A)
    other, _ = await make_user(B)
    async with await open_socket(url(deployment, B), cookie=socket_cookie(other)) as theirs:
        item = await create_item(owner, description="for everyone")
        await update_item(owner, item["id"], is_private=True, description="for me alone")
        await expect_event(theirs, "item.created", item)
        await expect_event(theirs, "item.deleted", item)  # as they last saw it


async def test_a_foreign_origin_and_a_missing_session_are_refused(
    deployment: Deployment, make_user: UserFactory
):
    client, _ = await make_user(A)
    for worker in (A, B):
        base = url(deployment, worker)
        assert await refused_status(base, cookie=socket_cookie(client), origin="https://evil.example") == 403
        assert await refused_status(base, cookie=None) == 403
        assert await refused_status(base, cookie="session=forged") == 403


# ----------------------------------------------------------------------------- revocation


async def revoked_within_deadline(ws: ClientConnection, revoke: Callable[[], Awaitable[None]]) -> None:
    """`revoke()` closes `ws` with 4401, within 2 s of the call."""
    closing = asyncio.create_task(close_code(ws))
    started = time.monotonic()
    await revoke()
    code, _ = await closing
    elapsed = time.monotonic() - started
    assert code == CLOSE_REVOKED
    assert elapsed < REVOCATION_DEADLINE, f"closed after {elapsed:.2f} s"


async def second_login(deployment: Deployment, worker: int, first: ApiClient) -> ApiClient:
    """Another login of the same user (another browser), through `worker`."""
    me = (await first.get(f"{API}/users/me")).json()
    client = deployment.client(worker)
    response = await client.post(f"{API}/auth/login", json={"username": me["username"], "password": PASSWORD})
    assert response.status_code == 200, response.text
    return client


async def test_logout_through_one_worker_closes_the_socket_on_the_other(
    deployment: Deployment, make_user: UserFactory
):
    client, _ = await make_user(A)
    async with await open_socket(url(deployment, B), cookie=socket_cookie(client)) as ws:

        async def logout() -> None:
            assert (await client.post(f"{API}/auth/logout")).status_code == 200

        await revoked_within_deadline(ws, logout)


async def test_logout_all_closes_every_socket_of_the_user(deployment: Deployment, make_user: UserFactory):
    laptop, _ = await make_user(A)
    phone = await second_login(deployment, B, laptop)
    async with (
        await open_socket(url(deployment, A), cookie=socket_cookie(laptop)) as first,
        await open_socket(url(deployment, B), cookie=socket_cookie(phone)) as second,
    ):
        other_closing = asyncio.create_task(close_code(second))

        async def logout_all() -> None:
            assert (await laptop.post(f"{API}/auth/logout-all")).status_code == 200

        await revoked_within_deadline(first, logout_all)
        assert (await other_closing)[0] == CLOSE_REVOKED


async def test_deleting_a_session_closes_its_sockets_only(deployment: Deployment, make_user: UserFactory):
    laptop, _ = await make_user(A)
    phone = await second_login(deployment, B, laptop)
    sessions = (await laptop.get(f"{API}/users/me/sessions")).json()
    (phone_login,) = [s["id"] for s in sessions if not s["current"]]
    async with (
        await open_socket(url(deployment, A), cookie=socket_cookie(laptop)) as kept,
        await open_socket(url(deployment, B), cookie=socket_cookie(phone)) as ended,
    ):

        async def delete_session() -> None:
            response = await laptop.delete(f"{API}/users/me/sessions/{phone_login}")
            assert response.status_code == 204, response.text

        await revoked_within_deadline(ended, delete_session)
        await expect_marker(kept, laptop)


async def test_deactivation_closes_the_users_sockets(deployment: Deployment, make_user: UserFactory):
    client, account = await make_user(A)
    boss, _ = await make_user(A, admin=True)
    async with await open_socket(url(deployment, B), cookie=socket_cookie(client)) as ws:

        async def deactivate() -> None:
            response = await boss.patch(f"{API}/admin/users/{account.id}", json={"is_active": False})
            assert response.status_code == 200, response.text

        await revoked_within_deadline(ws, deactivate)


async def test_a_password_change_closes_the_other_logins_sockets(
    deployment: Deployment, make_user: UserFactory
):
    laptop, _ = await make_user(A)
    phone = await second_login(deployment, B, laptop)
    async with (
        await open_socket(url(deployment, B), cookie=socket_cookie(laptop)) as current,
        await open_socket(url(deployment, A), cookie=socket_cookie(phone)) as other,
    ):

        async def change_password() -> None:
            body = {"password": PASSWORD + "-changed", "current_password": PASSWORD}
            response = await laptop.patch(f"{API}/users/me", json=body)
            assert response.status_code == 200, response.text

        await revoked_within_deadline(other, change_password)
        await expect_marker(current, laptop)  # the login that changed it continues


async def test_a_revocation_by_another_process_closes_the_sockets(
    deployment: Deployment, make_user: UserFactory, app: FastAPI
):
    # As `python -m app revoke-sessions` does: the session store's script, run by a
    # process that is neither worker (here, the tests' own app), announces it to both.
    client, account = await make_user(A)
    async with (
        await open_socket(url(deployment, A), cookie=socket_cookie(client)) as first,
        await open_socket(url(deployment, B), cookie=socket_cookie(client)) as second,
    ):
        other_closing = asyncio.create_task(close_code(second))

        async def revoke() -> None:
            assert await state_of(app)[SESSION_STORE].revoke_user(account.id) == 1

        await revoked_within_deadline(first, revoke)
        assert (await other_closing)[0] == CLOSE_REVOKED


async def test_a_refresh_closes_nothing(deployment: Deployment, make_user: UserFactory):
    client, _ = await make_user(A)
    async with await open_socket(url(deployment, B), cookie=socket_cookie(client)) as ws:
        assert (await client.post(f"{API}/auth/refresh")).status_code == 200
        await expect_marker(ws, client)


# ----------------------------------------------------------------------------- slow clients


async def test_a_stalled_client_does_not_hold_up_a_healthy_one(
    deployment: Deployment, make_user: UserFactory
):
    client, _ = await make_user(A)
    viewer, _ = await make_user(B)
    b = deployment.workers[B]
    before = await b.metric("websocket_connections_active")
    async with (
        await open_socket(
            url(deployment, B),
            cookie=socket_cookie(viewer),
            receive_buffer=4096,
            max_queue=1,
            compression=None,
        ) as stalled,
        await open_socket(url(deployment, B), cookie=socket_cookie(viewer)) as healthy,
    ):
        assert await b.metric("websocket_connections_active") == before + 2
        # Items of the largest size, until B gives up on the client that stopped reading:
        # its kernel buffers take a few megabytes, then its queue of 256 fills.
        description, slowest = "x" * 10_000, 0.0
        for _ in range(100):
            started = time.monotonic()
            batch = await asyncio.gather(*(create_item(client, description=description) for _ in range(8)))
            expected = {item["id"] for item in batch}
            while expected:
                event = await next_event(healthy, timeout=2.0)
                expected.discard(event["item"]["id"])
            slowest = max(slowest, time.monotonic() - started)
            if await b.metric("websocket_connections_active") == before + 1:
                break
        else:
            raise AssertionError("the stalled client was never given up on")
        assert slowest < 1.0, f"a batch of 8 items took {slowest:.2f} s to reach the healthy socket"
        code, _ = await close_code(stalled, timeout=10)  # reading again: the backlog, then the code
        assert code == CLOSE_TOO_SLOW
        await expect_marker(healthy, client)


async def test_metrics_count_the_open_sockets(deployment: Deployment, make_user: UserFactory):
    client, _ = await make_user(A)
    b = deployment.workers[B]
    before = await b.metric("websocket_connections_active")
    async with await open_socket(url(deployment, B), cookie=socket_cookie(client)) as ws:
        await expect_marker(ws, client)
        assert await b.metric("websocket_connections_active") == before + 1
    for _ in range(100):
        if await b.metric("websocket_connections_active") == before:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the gauge did not come back down")
