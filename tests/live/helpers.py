"""A live-updates client (the `websockets` package) and what the tests expect of it."""

import asyncio
import json
import socket
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.live.hub import CLOSE_REVOKED
from tests.fixtures.client import API, ApiClient, unique

WS_PATH = f"{API}/ws"
ITEMS = f"{API}/items"
# API.md section 7: a revoked socket is closed within 2 s.
REVOCATION_DEADLINE = 2.0


async def open_socket(
    base_url: str,
    *,
    cookie: str | None,
    origin: str | None = "own",
    receive_buffer: int | None = None,
    max_queue: int | None = 16,
    compression: str | None = "deflate",
    authorization: str | None = None,
) -> ClientConnection:
    """A socket to `base_url` (http://host:port) with `cookie` ("name=value") and an
    Origin header: "own" for the server's own origin, None for none, or a value.
    `receive_buffer` shrinks the kernel's receive buffer and `max_queue` the client's
    own: a client that stops reading then stalls the server's sends sooner (with
    `compression=None`, or the server's permessage-deflate shrinks what it sends)."""
    ws_url = base_url.replace("http://", "ws://", 1) + WS_PATH
    headers: dict[str, str] = {}
    if cookie:
        headers["Cookie"] = cookie
    if authorization:
        headers["Authorization"] = authorization
    if origin == "own":
        headers["Origin"] = base_url
    elif origin is not None:
        headers["Origin"] = origin
    sock = None
    if receive_buffer is not None:
        host, port = base_url.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return await connect(
        ws_url,
        additional_headers=headers,
        sock=sock,
        max_queue=max_queue,
        compression=compression,
        open_timeout=5,
        ping_interval=None,
    )


async def refused_status(base_url: str, **kwargs: Any) -> int:
    """The HTTP status of a handshake the server refuses (fails if it accepts)."""
    try:
        ws = await open_socket(base_url, **kwargs)
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    raise AssertionError("the socket was accepted")


async def next_event(ws: ClientConnection, timeout: float = 3.0) -> dict[str, Any]:
    """The next item event (heartbeats skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") != "ping":
                return message


async def close_code(ws: ClientConnection, timeout: float = 5.0) -> tuple[int | None, float]:
    """Waits for the server to close the socket: its close code, and how long that took."""
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code, time.monotonic() - started


async def assert_logout_closes(ws: ClientConnection, client: ApiClient) -> None:
    """`client` logs out; its socket `ws` is closed with 4401 within the contract's 2 s."""
    closing = asyncio.create_task(close_code(ws))
    started = time.monotonic()
    assert (await client.post(f"{API}/auth/logout")).status_code == 200
    code, _ = await closing
    assert code == CLOSE_REVOKED
    assert time.monotonic() - started < REVOCATION_DEADLINE


def server_side(hub: Any, ws: ClientConnection) -> Any:
    """The hub's LiveSocket for the client socket `ws` (matched by its port)."""
    (socket_,) = [s for s in hub.sockets if s.websocket.client.port == ws.local_address[1]]
    return socket_


def filler_item(owner_id: int) -> dict[str, Any]:
    """A large public item (half a megabyte) to fill a stalled client's buffers with."""
    return {
        "id": 0,
        "title": "filler",
        "description": "x" * 500_000,
        "is_private": False,
        "owner_id": owner_id,
    }


async def create_item(client: ApiClient, **fields: Any) -> dict[str, Any]:
    response = await client.post(ITEMS, json={"title": unique("item-"), **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def update_item(client: ApiClient, item_id: int, **fields: Any) -> dict[str, Any]:
    response = await client.put(f"{ITEMS}/{item_id}", json=fields)
    assert response.status_code == 200, response.text
    return response.json()


async def delete_item(client: ApiClient, item_id: int) -> None:
    response = await client.delete(f"{ITEMS}/{item_id}")
    assert response.status_code == 204, response.text


async def expect_event(ws: ClientConnection, type_: str, item: dict[str, Any], timeout: float = 3.0) -> None:
    """The next event is `type_` for exactly `item` (as its HTTP response showed it)."""
    event = await next_event(ws, timeout)
    assert event == {"type": type_, "item": item}, event


async def expect_marker(ws: ClientConnection, client: ApiClient) -> None:
    """Creates a public item and expects it as the socket's next event: whatever was
    published before it and not received was never sent to this socket (events from
    one worker reach a subscriber in the order they were published)."""
    marker = await create_item(client)
    await expect_event(ws, "item.created", marker)
