"""Fault fixtures: a Redis server the test owns, and a relay in front of the shared PostgreSQL.

The shared servers are never stopped or paused: Redis faults are real (terminate,
SIGSTOP) on a throwaway `redis-server`, PostgreSQL faults are made by the relay
(tests/faults/relay.py) between the app and the shared server.
"""

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from app.main import create_app
from tests.conftest import ClientFactory, client_factory, make_settings
from tests.faults.helpers import serving
from tests.faults.relay import Relay
from tests.fixtures.client import ApiClient
from tests.fixtures.server import free_port

# What the shared test server runs with, and the default here: nothing on disk.
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")


class ThrowawayRedis:
    """A `redis-server` of our own on a free port: nothing shared, and nothing persisted
    unless `persistence` says otherwise (it is read at each start)."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.directory = directory
        self.persistence: tuple[str, ...] = NO_PERSISTENCE
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        assert self.process is None
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                *self.persistence,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process is not None
            assert self.process.poll() is None, "redis-server exited"
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            try:
                writer.write(b"PING\r\n")
                if await asyncio.wait_for(reader.readline(), 1) == b"+PONG\r\n":
                    return
            finally:
                writer.close()
                await writer.wait_closed()
            await asyncio.sleep(0.05)
        raise AssertionError(f"redis-server on port {self.port} did not answer within 10 s")

    def stop(self) -> None:
        """SIGTERM, as `docker compose restart` sends: the server is gone, and with it
        every key it does not persist."""
        if self.process is None:
            return
        self.resume()  # a stopped process does not act on SIGTERM until it is continued
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    async def restart(self) -> None:
        self.stop()
        await self.start()

    def hang(self) -> None:
        """Like `kill -STOP`: connections are accepted by the kernel, nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.process is not None and self.paused:
            os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False


@pytest.fixture
async def throwaway_redis(tmp_path: Path) -> AsyncIterator[ThrowawayRedis]:
    server = ThrowawayRedis(free_port(), tmp_path)
    await server.start()
    try:
        yield server
    finally:
        server.stop()  # continues a paused server first, also when the test failed


@pytest.fixture
async def pg_relay(database_url: str) -> AsyncIterator[Relay]:
    url = make_url(database_url)
    relay = Relay(url.host or "127.0.0.1", url.port or 5432)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.close()


@dataclass
class Stack:
    """One app of the test's own, reaching PostgreSQL through the relay and the throwaway Redis."""

    app: FastAPI
    redis: ThrowawayRedis
    relay: Relay
    factory: ClientFactory
    clients: list[ApiClient] = field(default_factory=list)

    def client(self) -> ApiClient:
        client = self.factory()
        self.clients.append(client)
        return client

    async def heal_and_close_clients(self) -> None:
        # Heal first, also after a failed test: closing the pools must not wait on a fault.
        self.redis.resume()
        await self.relay.set_mode("forward")
        for client in self.clients:
            await client.aclose()


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack(
    database_url: str, redis_prefix: str, throwaway_redis: ThrowawayRedis, pg_relay: Relay
) -> AsyncIterator[StackFactory]:
    """Builds the app with the test's settings overrides (e.g. a smaller pool)."""
    via_relay = make_url(database_url).set(host="127.0.0.1", port=pg_relay.port)
    async with AsyncExitStack() as exits:

        async def make(**overrides: object) -> Stack:
            settings = make_settings(
                via_relay.render_as_string(hide_password=False),
                redis_prefix,
                redis_url=throwaway_redis.url,
                **overrides,
            )
            app = await exits.enter_async_context(serving(create_app(settings)))
            built = Stack(app, throwaway_redis, pg_relay, client_factory(app))
            exits.push_async_callback(built.heal_and_close_clients)  # runs before the app stops
            return built

        yield make


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack()
