"""What a client may send on a live socket (hub.py: nothing that matters, so little), and
what a refused handshake logs: a real server each time, the session's app behind an
in-process uvicorn run with docker/entrypoint.sh's WebSocket flags, or the two workers."""

import asyncio
import logging
from contextlib import suppress

import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from app.live.hub import CLOSE_FLOOD, CLOSE_TOO_BIG, FLOOD_BURST, MAX_CLIENT_MESSAGE_BYTES
from tests.live.conftest import Deployment, UserFactory, cookie_of, socket_cookie
from tests.live.helpers import close_code, create_item, expect_event, open_socket, refused_status

REFUSED_LOGGER = "uvicorn.error"


async def send_quietly(ws: ClientConnection, message: str | bytes) -> None:
    with suppress(ConnectionClosed):  # the server may close before it has all of it
        await ws.send(message)


# ----------------------------------------------------------------------------- size


@pytest.mark.parametrize(
    "message",
    [
        "x" * (MAX_CLIENT_MESSAGE_BYTES + 1),
        b"\0" * (MAX_CLIENT_MESSAGE_BYTES + 1),
        "é" * (MAX_CLIENT_MESSAGE_BYTES // 2 + 1),  # bytes, not characters, are counted
        b"\0" * 1024 * 1024,  # past uvicorn's --ws-max-size: refused before it is buffered
        "x" * 8 * 1024 * 1024,
    ],
    ids=["text-4097", "bytes-4097", "utf8-4098", "bytes-1MiB", "text-8MiB"],
)
async def test_a_message_over_the_limit_closes_the_socket_with_1009(
    app: FastAPI, served: str, logged_in, message: str | bytes
):
    client = await logged_in()
    async with await open_socket(served, cookie=cookie_of(app, client), compression=None) as ws:
        await send_quietly(ws, message)
        code, _ = await close_code(ws)
    assert code == CLOSE_TOO_BIG


async def test_a_message_at_the_limit_is_read_and_ignored(app: FastAPI, served: str, logged_in):
    client = await logged_in()
    async with await open_socket(served, cookie=cookie_of(app, client)) as ws:
        await ws.send("x" * MAX_CLIENT_MESSAGE_BYTES)
        await ws.send(b"\0" * MAX_CLIENT_MESSAGE_BYTES)
        item = await create_item(client)
        await expect_event(ws, "item.created", item)


async def test_the_workers_refuse_a_1_mib_frame_with_1009(deployment: Deployment, make_user: UserFactory):
    client, _ = await make_user(0)
    base_url = deployment.workers[0].base_url
    async with await open_socket(base_url, cookie=socket_cookie(client), compression=None) as ws:
        await send_quietly(ws, b"\0" * 1024 * 1024)
        code, _ = await close_code(ws)
    assert code == CLOSE_TOO_BIG


# ----------------------------------------------------------------------------- flood


async def test_a_flood_of_messages_closes_the_socket_with_1008(app: FastAPI, served: str, logged_in):
    client = await logged_in()
    async with await open_socket(served, cookie=cookie_of(app, client)) as ws:
        for _ in range(FLOOD_BURST * 10):
            await send_quietly(ws, "{}")
        code, _ = await close_code(ws)
    assert code == CLOSE_FLOOD


async def test_a_few_messages_or_none_keep_the_socket_open(app: FastAPI, served: str, logged_in):
    client = await logged_in()
    async with (
        await open_socket(served, cookie=cookie_of(app, client)) as quiet,
        await open_socket(served, cookie=cookie_of(app, client)) as chatty,
    ):
        for _ in range(3):
            for _ in range(FLOOD_BURST // 2):  # a burst, then a pause: within the budget
                await chatty.send('{"type": "hello"}')
            await asyncio.sleep(1.0)
        item = await create_item(client)
        await expect_event(quiet, "item.created", item)
        await expect_event(chatty, "item.created", item)
        assert quiet.close_code is None
        assert chatty.close_code is None


# ----------------------------------------------------------------------------- refused handshakes


async def test_a_handshake_with_a_cookie_header_that_does_not_parse_cleanly_is_refused(
    app: FastAPI, served: str, logged_in
):
    # The same rule as for HTTP (app/middleware.py): a valid session next to an unclean
    # pair authenticates nothing, here as there.
    client = await logged_in()
    valid = cookie_of(app, client)
    assert await refused_status(served, cookie=f'x="a\\"; {valid}') == 403
    async with await open_socket(served, cookie=valid):
        pass  # the same session alone is accepted


async def test_a_refused_handshake_logs_one_info_line_and_no_error(
    served: str, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger=REFUSED_LOGGER)
    for _ in range(3):
        caplog.clear()
        assert await refused_status(served, cookie=None) == 403
        await asyncio.sleep(0.1)  # uvicorn logs after the app returns
        server_lines = [r for r in caplog.records if r.name.startswith(REFUSED_LOGGER)]
        assert [r.levelno for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert [r.levelname for r in server_lines] == ["INFO"], [r.getMessage() for r in server_lines]


async def test_refused_handshakes_log_no_error_on_the_workers(deployment: Deployment, make_user: UserFactory):
    client, _ = await make_user(0)
    worker = deployment.workers[0]
    worker.log.seek(0, 2)
    start = worker.log.tell()
    assert await refused_status(worker.base_url, cookie=None) == 403
    assert (
        await refused_status(worker.base_url, cookie=socket_cookie(client), origin="https://evil.example")
        == 403
    )
    await asyncio.sleep(0.3)
    worker.log.seek(start)
    written = worker.log.read()
    assert "handshake" not in written, written
    assert "error" not in written.lower(), written
