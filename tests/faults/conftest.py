"""Fault fixtures: a Redis server the test owns, a relay in front of the shared PostgreSQL,
and a whole deployment (two worker processes) on a PostgreSQL and a Redis of its own.

The shared servers are never stopped or paused: Redis faults are real (terminate,
SIGSTOP) on a throwaway `redis-server`; PostgreSQL faults are made by the relay
(tests/faults/relay.py) between the app and the shared server, or for real (SIGSTOP,
a restart) on a throwaway cluster (tests/fixtures/servers.py).
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread
import asyncpg
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from app.main import create_app
from app.ops.bootstrap import migrate
from tests.conftest import ClientFactory, client_factory, make_settings
from tests.faults.deployment import Deployment
from tests.faults.helpers import serving
from tests.faults.relay import Relay
from tests.fixtures.client import ApiClient
from tests.fixtures.servers import ThrowawayPostgres, ThrowawayRedis


@pytest.fixture
async def throwaway_redis(tmp_path: Path) -> AsyncIterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path)
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


@pytest.fixture(scope="session")
async def throwaway_postgres() -> AsyncIterator[ThrowawayPostgres]:
    """One cluster for the run (initdb takes a second); each test makes its own database."""
    server = ThrowawayPostgres()
    server.init()
    await server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
async def deployment(
    throwaway_postgres: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, request: pytest.FixtureRequest
) -> AsyncIterator[Deployment]:
    """Two worker processes on a database of this test's own in the throwaway cluster and
    on the throwaway Redis. Whatever the test paused is resumed before they stop."""
    throwaway_postgres.resume()
    if throwaway_postgres.process is None:  # a test stopped it
        await throwaway_postgres.start()
    name = "faults_" + request.node.name.lower().replace("[", "_").replace("]", "").replace("-", "_")[:40]
    admin = await asyncpg.connect(f"{throwaway_postgres.url}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"{throwaway_postgres.url}/{name}"
    await anyio.to_thread.run_sync(migrate, make_settings(url, "unused:"))
    made = Deployment(throwaway_postgres, throwaway_redis, url)
    try:
        await anyio.to_thread.run_sync(made.start_workers)
        yield made
    finally:
        await made.close()
