"""This worker's live sockets: who is connected, what each may see, and one bounded
queue and one sender per socket, so that a slow client only ever delays itself.

The dispatcher (`deliver`, `end_logins`) never awaits: it puts a pre-encoded frame in
each queue or, when a queue is full, gives up on that socket (close code 4408). A
socket whose single send stalls past `send_timeout` is given up on the same way.

Close codes (API.md section 7 names 4401; the others are ours):
  4401  the login this socket belongs to ended: logout, logout everywhere, the session
        deleted, the user deactivated, deleted or demoted, the password changed
        (other logins only) or reset, a stolen refresh token replayed.
  4408  too far behind: more than `queue_size` messages waiting, or one send stuck for
        `send_timeout` seconds. Reconnect, then reload what is on screen.
  1001  the worker is shutting down. Reconnect.
  1009  the client sent a message over `MAX_CLIENT_MESSAGE_BYTES` (4096 bytes), or a
        frame over uvicorn's `--ws-max-size` (64 KiB, refused before it is buffered).
  1008  the client sent more than `FLOOD_BURST` messages at once or, sustained, more
        than `FLOOD_PER_SECOND` a second (policy violation).

Clients have nothing to say on this socket: what they send is read (that is how their
leaving is noticed) and dropped, within the two limits above.

A socket belongs to a login, not to one session token: refreshing rotates the token
but continues the login, so it closes nothing. A socket opened with a session that
later merely expires lives on while its login does (until the login's absolute end
or its revocation): the sweep below checks every socket's login at each heartbeat.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from contextlib import suppress
from typing import Any

from prometheus_client import Gauge
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.auth.principal import SessionUser
from app.live.events import PING, ItemEvent
from app.state import Key

logger = logging.getLogger(__name__)

CLOSE_REVOKED = 4401
CLOSE_TOO_SLOW = 4408
CLOSE_GOING_AWAY = 1001
CLOSE_FLOOD = 1008
CLOSE_TOO_BIG = 1009
REASONS = {
    CLOSE_REVOKED: "session revoked",
    CLOSE_TOO_SLOW: "too far behind",
    CLOSE_GOING_AWAY: "going away",
    CLOSE_FLOOD: "too many messages",
    CLOSE_TOO_BIG: "message too big",
}

# The protocol needs nothing from clients (anything they send is ignored), so there is
# no reason to hold more than a small message of theirs in memory: far above anything a
# client might send us in future (an acknowledgement, a subscription), far below the
# 64 KiB uvicorn itself accepts (--ws-max-size) or its 16 MiB default.
MAX_CLIENT_MESSAGE_BYTES = 4096
# Flood control, a token bucket per socket: a burst of FLOOD_BURST messages, refilled at
# FLOOD_PER_SECOND. A well-behaved client sends none; without it one client was read
# sending 60,000 messages a second, each one read, parsed and dropped by the worker.
FLOOD_BURST = 20
FLOOD_PER_SECOND = 10.0

QUEUE_SIZE = 256
# Per user and worker: enough for every tab a person keeps open, few enough that one
# account cannot hold a worker's memory (each socket is ~80 KiB with its buffers).
MAX_SOCKETS_PER_USER = 20
SEND_TIMEOUT_SECONDS = 10.0
# How often sends are checked against SEND_TIMEOUT: one pass over the sockets, rather
# than a timer per send, which cost a tenth of a fan-out.
WATCHDOG_SECONDS = 1.0
# The close frame waits behind whatever is still in the socket's write buffer.
CLOSE_TIMEOUT_SECONDS = 5.0
HEARTBEAT_SECONDS = 25.0

LiveLogins = Callable[[set[str]], Awaitable[set[str]]]


class LiveSocket:
    __slots__ = (
        "close_code", "ended", "hub", "is_superuser", "login_id", "queue", "sender", "sending_since",
        "tokens", "tokens_at", "user_id", "websocket",
    )  # fmt: skip

    def __init__(self, hub: "Hub", websocket: WebSocket, user: SessionUser, login_id: str) -> None:
        self.hub = hub
        self.websocket = websocket
        self.user_id = user.id
        self.is_superuser = user.is_superuser
        self.login_id = login_id
        self.queue: asyncio.Queue[str] = asyncio.Queue(hub.queue_size)
        self.sender: asyncio.Task[None] | None = None
        self.sending_since = 0.0  # time.monotonic() when the send in progress began; 0: none
        self.ended = False
        self.close_code: int | None = None
        self.tokens = float(FLOOD_BURST)  # the flood-control bucket, refilled since tokens_at
        self.tokens_at = time.monotonic()

    def offer(self, message: str) -> None:
        """Queue a frame without waiting; a socket that cannot take it is given up on."""
        if self.ended:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            logger.info(
                "live socket too far behind",
                extra={"event": "live_socket_dropped", "actor": self.user_id, "login": self.login_id},
            )
            self.end(CLOSE_TOO_SLOW)

    def end(self, code: int | None) -> None:
        """Deliver nothing more from now on and have `serve` close with `code`
        (None: the client already left). The first reason wins."""
        if self.ended:
            return
        self.ended = True
        self.close_code = code
        self.hub.forget(self)
        while not self.queue.empty():  # what it has not received yet goes now, not after the close
            self.queue.get_nowait()
        # Also a send stuck on a client that stopped reading: the close does not wait for it.
        if self.sender is not None:
            self.sender.cancel()

    async def serve(self) -> None:
        """Send until the socket ends, then close it with its code. Returns when done."""
        if self.hub.gauge is not None:
            self.hub.gauge.inc()
        receiver = asyncio.create_task(self._receive())
        try:
            if not self.ended:
                self.sender = asyncio.create_task(self._send_all())
                await asyncio.wait({self.sender})
        finally:
            tasks = {task for task in (receiver, self.sender) if task is not None}
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)  # unlike awaiting them, never mistakes their cancellation for ours
            if self.hub.gauge is not None:
                self.hub.gauge.dec()
        if self.close_code is not None:
            # A stalled client cannot take a close frame either: give up after a while,
            # and uvicorn then closes the connection.
            with suppress(TimeoutError, WebSocketDisconnect, RuntimeError):
                async with asyncio.timeout(self.hub.close_timeout):
                    await self.websocket.close(self.close_code, REASONS.get(self.close_code))

    async def _send_all(self) -> None:
        while True:
            message = await self.queue.get()
            self.sending_since = time.monotonic()
            try:
                await self.websocket.send_text(message)
            except (WebSocketDisconnect, RuntimeError):
                self.end(None)
                return
            self.sending_since = 0.0

    async def _receive(self) -> None:
        # Nothing a client sends means anything here, but reading is how its leaving is
        # noticed (and uvicorn stops reading the connection until the app receives).
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                refusal = self._refusal(message)
                if refusal is not None:
                    logger.info(
                        "live socket closed: %s", REASONS[refusal],
                        extra={"event": "live_socket_refused", "actor": self.user_id, "login": self.login_id},
                    )  # fmt: skip
                    self.end(refusal)
                    return
        except (WebSocketDisconnect, RuntimeError):
            pass
        self.end(None)

    def _refusal(self, message: MutableMapping[str, Any]) -> int | None:
        """The close code a client message calls for (too big, one too many), or None."""
        text, data = message.get("text"), message.get("bytes")
        size = len(data) if data is not None else len(text.encode()) if text is not None else 0
        if size > MAX_CLIENT_MESSAGE_BYTES:
            return CLOSE_TOO_BIG
        now = time.monotonic()
        self.tokens = min(FLOOD_BURST, self.tokens + (now - self.tokens_at) * FLOOD_PER_SECOND)
        self.tokens_at = now
        if self.tokens < 1:
            return CLOSE_FLOOD
        self.tokens -= 1
        return None


class Hub:
    def __init__(
        self,
        *,
        queue_size: int = QUEUE_SIZE,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
        close_timeout: float = CLOSE_TIMEOUT_SECONDS,
        heartbeat: float = HEARTBEAT_SECONDS,
        watchdog: float = WATCHDOG_SECONDS,
        max_per_user: int = MAX_SOCKETS_PER_USER,
        gauge: Gauge | None = None,
    ) -> None:
        self.queue_size = queue_size
        self.send_timeout = send_timeout
        self.close_timeout = close_timeout
        self.heartbeat = heartbeat
        self.watchdog = watchdog
        self.max_per_user = max_per_user
        self.gauge = gauge
        self.sockets: set[LiveSocket] = set()
        self.admins: set[LiveSocket] = set()
        self.by_user: dict[int, set[LiveSocket]] = {}
        self.by_login: dict[str, set[LiveSocket]] = {}

    def full_for(self, user_id: int) -> bool:
        return len(self.by_user.get(user_id, ())) >= self.max_per_user

    def add(self, websocket: WebSocket, user: SessionUser, login_id: str) -> LiveSocket:
        socket = LiveSocket(self, websocket, user, login_id)
        self.sockets.add(socket)
        if socket.is_superuser:
            self.admins.add(socket)
        self.by_user.setdefault(socket.user_id, set()).add(socket)
        self.by_login.setdefault(login_id, set()).add(socket)
        return socket

    def forget(self, socket: LiveSocket) -> None:
        self.sockets.discard(socket)
        self.admins.discard(socket)
        mine = self.by_user.get(socket.user_id)
        if mine is not None:
            mine.discard(socket)
            if not mine:
                del self.by_user[socket.user_id]
        same_login = self.by_login.get(socket.login_id)
        if same_login is not None:
            same_login.discard(socket)
            if not same_login:
                del self.by_login[socket.login_id]

    def _audience(self, item: dict[str, Any]) -> set[LiveSocket]:
        """The local sockets whose user may see `item` (events.may_see, by index)."""
        if not item["is_private"]:
            return set(self.sockets)
        return self.by_user.get(item["owner_id"], set()) | self.admins

    def deliver(self, event: ItemEvent) -> None:
        """Hand an event to every local socket whose user may see it. Never waits."""
        audience = self._audience(event.item)
        lost: set[LiveSocket] = set()
        previous = event.previous
        if (
            event.type == "item.updated"
            and previous is not None
            and previous["is_private"] != event.item["is_private"]
        ):
            # Could see it before, cannot now: for them the item is gone. They get the
            # state they could see, never the new content.
            lost = self._audience(previous) - audience
        if audience:
            message = event.message(event.type, event.item)
            for socket in audience:
                socket.offer(message)
        if lost and previous is not None:
            gone = event.message("item.deleted", previous)
            for socket in lost:
                socket.offer(gone)

    def end_logins(self, login_ids: Iterable[str], code: int = CLOSE_REVOKED) -> int:
        ended = 0
        for login_id in login_ids:
            for socket in list(self.by_login.get(login_id, ())):
                socket.end(code)
                ended += 1
        return ended

    def end_all(self, code: int = CLOSE_GOING_AWAY) -> None:
        for socket in list(self.sockets):
            socket.end(code)

    async def check_logins(self, live_logins: LiveLogins) -> int:
        """Close the sockets whose login no longer exists: a revocation missed while this
        worker was not subscribed, or a login past its absolute end."""
        logins = set(self.by_login)
        if not logins:
            return 0
        return self.end_logins(logins - await live_logins(logins))

    def end_stalled(self, now: float) -> int:
        """Give up on the sockets whose send in progress began more than `send_timeout` ago."""
        limit = now - self.send_timeout
        stalled = [socket for socket in self.sockets if 0 < socket.sending_since < limit]
        for socket in stalled:
            logger.info(
                "live socket stalled",
                extra={"event": "live_socket_dropped", "actor": socket.user_id, "login": socket.login_id},
            )
            socket.end(CLOSE_TOO_SLOW)
        return len(stalled)

    async def keepalive(self, live_logins: LiveLogins) -> None:
        """Forever: the stalled-send watchdog and, every `heartbeat`, a heartbeat frame to
        every socket and the login sweep."""
        beat = time.monotonic()
        while True:
            await asyncio.sleep(self.watchdog)
            now = time.monotonic()
            self.end_stalled(now)
            if now - beat < self.heartbeat:
                continue
            beat = now
            for socket in list(self.sockets):
                socket.offer(PING)
            try:
                await self.check_logins(live_logins)
            except Exception:  # the store is down: the next round tries again
                logger.warning("live sockets: the login sweep failed", exc_info=True)


HUB: Key[Hub] = Key("live_hub")
