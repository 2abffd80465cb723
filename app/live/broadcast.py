"""Getting every change to every worker: Redis pub/sub, or the process itself.

Two channels (the key layout in app/auth/sessions names them): `live:items` (item
events, published by the worker that committed the change, after the commit) and
`live:revoked` (login ids, published by the session store's scripts in the same atomic
step that ends the logins). Each worker holds one subscription and hands what arrives
to its own Hub. On the embedded default there is no Redis: the memory store tells the
hub of its own process about ended logins (wired by the lifespan, app/main.py).

Pub/sub delivers at most once: a worker that is not subscribed at that moment (Redis
restarting, the subscription being re-established) misses what was published. For
revocations that gap is closed by re-checking every local socket's login as soon as the
subscription is back (and at each heartbeat); a missed item event stays missed, like
any change made while a client is offline: clients reload on reconnect.
"""

import asyncio
import logging
import random
from contextlib import suppress
from typing import Protocol

from redis.asyncio import Redis

from app.config import Settings
from app.live.events import ITEMS_CHANNEL, REVOKED_CHANNEL, ItemEvent
from app.live.hub import CLOSE_GOING_AWAY, Hub, LiveLogins
from app.redis import resolving
from app.state import Key

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 2.0
# A subscription that has heard nothing (not even a pong) for this long is pinged,
# and given up on if the ping goes unanswered for as long again: a Redis that hangs
# without closing the connection would otherwise leave this worker deaf for good.
SILENCE_SECONDS = 5.0
RECONNECT_MIN_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 5.0


class Broadcaster(Protocol):
    hub: Hub

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ready(self, timeout: float) -> bool:
        """Whether this worker receives what is published (waiting up to `timeout` s)."""
        ...

    async def publish_item(self, event: ItemEvent) -> None:
        """Never raises: a committed change is not undone by a failed broadcast."""
        ...


class MemoryBroadcaster:
    """The embedded default: one process, so publishing is delivering."""

    def __init__(self, hub: Hub, live_logins: LiveLogins) -> None:
        self.hub = hub
        self.live_logins = live_logins
        self.keepalive: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.keepalive = asyncio.create_task(self.hub.keepalive(self.live_logins))

    async def close(self) -> None:
        self.hub.end_all(CLOSE_GOING_AWAY)
        await _cancel(self.keepalive)

    async def ready(self, timeout: float) -> bool:  # noqa: ARG002
        return True

    async def publish_item(self, event: ItemEvent) -> None:
        self.hub.deliver(event)


class RedisBroadcaster:
    def __init__(self, hub: Hub, live_logins: LiveLogins, publisher: Redis, *, url: str, prefix: str) -> None:
        self.hub = hub
        self.live_logins = live_logins
        self.publisher = (
            publisher  # the app's client, the session store's too: publishing is one short command
        )
        # A connection of its own, without the pool's read timeout: a subscription is
        # silent for as long as nothing happens.
        self.subscriber = Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_keepalive=True,
            **resolving(url),
        )
        self.items_channel = prefix + ITEMS_CHANNEL
        self.revoked_channel = prefix + REVOKED_CHANNEL
        self.subscribed = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None
        self.keepalive: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # In the background: the process starts (and answers /healthz) while Redis is down.
        self.reader = asyncio.create_task(self._read_forever())
        self.keepalive = asyncio.create_task(self.hub.keepalive(self.live_logins))

    async def close(self) -> None:
        self.hub.end_all(CLOSE_GOING_AWAY)
        await _cancel(self.reader)
        await _cancel(self.keepalive)
        await self.subscriber.aclose()

    async def ready(self, timeout: float) -> bool:
        with suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.subscribed.wait()
        return self.subscribed.is_set()

    async def publish_item(self, event: ItemEvent) -> None:
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                await self.publisher.publish(self.items_channel, event.encode())
        except Exception:
            logger.warning(
                "live update not published",
                exc_info=True,
                extra={"event": "live_publish_failed", "target": event.item.get("id")},
            )

    async def _read_forever(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        while True:
            try:
                await self._read()
            except Exception as exc:
                if self.subscribed.is_set():
                    delay = RECONNECT_MIN_SECONDS  # it worked until now: retry soon
                self.subscribed.clear()
                logger.warning(
                    "live updates: Redis subscription lost (%s), retrying in %.1f s",
                    type(exc).__name__,
                    delay,
                    extra={"event": "live_subscription_lost"},
                )
            # Jitter: the workers of a deployment do not all reconnect in the same instant.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _read(self) -> None:
        pubsub = self.subscriber.pubsub()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                await pubsub.subscribe(self.items_channel, self.revoked_channel)
                # Ready only once Redis has confirmed both: from then on nothing is missed.
                confirmed = 0
                while confirmed < 2:
                    message = await pubsub.get_message(timeout=CONNECT_TIMEOUT_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        confirmed += 1
                    elif message["type"] == "message":
                        self._dispatch(message["channel"], message["data"])
            self.subscribed.set()
            # Revocations published while this worker was not subscribed were missed.
            await self.hub.check_logins(self.live_logins)
            loop = asyncio.get_running_loop()
            heard, pinged = loop.time(), False
            while True:
                message = await pubsub.get_message(timeout=1.0)
                now = loop.time()
                if message is not None:
                    heard, pinged = now, False
                    if message["type"] == "message":
                        self._dispatch(message["channel"], message["data"])
                elif now - heard > SILENCE_SECONDS:
                    if pinged:
                        raise ConnectionError("Redis did not answer a ping on the subscription")
                    await pubsub.ping()
                    heard, pinged = now, True
        finally:
            self.subscribed.clear()
            with suppress(Exception):
                await pubsub.aclose()

    def _dispatch(self, channel: str, data: str) -> None:
        if channel == self.revoked_channel:
            self.hub.end_logins(data.split())
            return
        try:
            event = ItemEvent.decode(data)
        except ValueError:
            logger.warning("live updates: ignored a malformed item event", extra={"event": "live_bad_event"})
            return
        self.hub.deliver(event)


BROADCASTER: Key[Broadcaster] = Key("live_broadcaster")


def create_broadcaster(
    settings: Settings, hub: Hub, redis: Redis | None, live_logins: LiveLogins
) -> Broadcaster:
    """Redis pub/sub when REDIS_URL is set (`redis` is the app's client), else in-process."""
    if settings.redis_url is None or redis is None:
        return MemoryBroadcaster(hub, live_logins)
    return RedisBroadcaster(hub, live_logins, redis, url=settings.redis_url, prefix=settings.redis_key_prefix)


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
