"""Test wiring: a database of our own created and migrated once per run, a Redis DB
index and key prefix of our own, and one in-process app per cookie setting.

Isolation is by data, not by rollback: every test makes its own users and items
(unique names), because the code under test commits, runs after-commit hooks and
races real transactions (concurrent registrations), which a rolled-back outer
transaction would hide. Nothing outside our database and our key prefix is touched.

PostgreSQL and Redis are the ones at TEST_POSTGRES_URL and TEST_REDIS_URL when they
answer; when one does not, the run starts a throwaway one (tests/fixtures/backing.py).
"""

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import anyio.to_thread
import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from app.auth.cookies import COOKIES
from app.config import Settings
from app.db import SESSIONMAKER
from app.main import create_app
from app.models import User
from app.ops.bootstrap import migrate
from app.state import state_of
from tests.fixtures.backing import for_the_run
from tests.fixtures.client import Account, ApiClient, login, register
from tests.fixtures.smtp import Inbox, smtp_server

# The configured servers when they answer, else throwaway ones of the run's own.
BACKING = for_the_run(
    os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432"),
    os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13"),
)
POSTGRES_URL = BACKING.postgres_url
REDIS_URL = BACKING.redis_url
TEST_DATABASE = os.environ.get("TEST_DATABASE", "app_test")
SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"

ClientFactory = Callable[..., ApiClient]


def pytest_configure() -> None:
    if BACKING.problem:
        raise pytest.UsageError(f"make test: {BACKING.problem}")


def pytest_report_header() -> list[str]:
    return [f"PostgreSQL and Redis: {line}" for line in BACKING.report]


def pytest_unconfigure() -> None:
    BACKING.close()


async def drop_database(name: str) -> None:
    """Drop `name` (ours alone), whoever is still connected to it."""
    admin = await asyncpg.connect(f"{POSTGRES_URL}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def recreate_database(name: str) -> str:
    """Drop and create `name` (ours alone), returning its URL."""
    await drop_database(name)
    admin = await asyncpg.connect(f"{POSTGRES_URL}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"{POSTGRES_URL}/{name}"


def make_settings(database_url: str, redis_prefix: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "database_url": database_url,
        "redis_url": REDIS_URL,
        "redis_key_prefix": redis_prefix,
        "secret_key": SECRET_KEY,
        # Every in-process client is 127.0.0.1: the rate-limit tests set their own limits.
        "login_rate_limit": "100000/minute",
        "register_rate_limit": "100000/hour",
        "first_superuser_email": None,
        "first_superuser_password": None,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
async def database_url() -> str:
    url = await recreate_database(TEST_DATABASE)
    await anyio.to_thread.run_sync(migrate, make_settings(url, "unused:"))
    return url


@pytest.fixture(scope="session")
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = Redis.from_url(REDIS_URL)
    async for key in client.scan_iter(match=f"{prefix}*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture(scope="session")
async def redis() -> AsyncIterator[Redis]:
    """A client on the tests' Redis DB, for looking at what the app stored."""
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def settings(database_url: str, redis_prefix: str) -> Settings:
    # mail_send=False: its mails have no inbox. The mail app's sender alone sends what is
    # queued on this database; else this app's may take a row first and write it to the log
    # (a test then waits in vain for its mail: seen once in CI).
    return make_settings(database_url, redis_prefix, mail_send=False)


async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[FastAPI]:
    """`running()` as a context manager: the app's lifespan for the length of a block."""
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async for running_app in running(create_app(settings)):
        yield running_app


def client_factory(app: FastAPI, base_url: str = "https://testserver") -> ClientFactory:
    cookies = state_of(app)[COOKIES]

    def make(**kwargs: object) -> ApiClient:
        return ApiClient(
            transport=httpx.ASGITransport(app=app),
            base_url=base_url,
            csrf_cookie=cookies.csrf,
            session_cookie=cookies.session,
            **kwargs,  # type: ignore[arg-type]
        )

    return make


async def client_pool(app: FastAPI) -> AsyncIterator[ClientFactory]:
    """A client factory for `app` whose clients are closed when the generator ends (a
    fixture's teardown)."""
    made: list[ApiClient] = []
    factory = client_factory(app)

    def make(**kwargs: object) -> ApiClient:
        client = factory(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def make_client(app: FastAPI) -> AsyncIterator[ClientFactory]:
    async for make in client_pool(app):
        yield make


@pytest.fixture
async def client(make_client: ClientFactory) -> ApiClient:
    """An anonymous caller."""
    return make_client()


@pytest.fixture
async def user(make_client: ClientFactory) -> tuple[ApiClient, Account]:
    """A registered, logged-in user with a client of its own."""
    client = make_client()
    account = await register(client)
    await login(client, account)
    return client, account


async def promote(app: FastAPI, user_id: int) -> None:
    """Make a user superuser in the database, as an operator would. Through the app's
    sessionmaker, whose flush listener keeps the user's Redis snapshot true."""
    async with state_of(app)[SESSIONMAKER]() as session:
        row = await session.get(User, user_id)
        assert row is not None
        row.is_superuser = True
        await session.commit()


@pytest.fixture
async def make_admin(
    app: FastAPI, make_client: ClientFactory
) -> Callable[[], Awaitable[tuple[ApiClient, Account]]]:
    """Registers a user, promotes it in the database (as an operator would), logs it in."""

    async def make() -> tuple[ApiClient, Account]:
        client = make_client()
        account = await register(client)
        await promote(app, account.id)
        await login(client, account)
        return client, account

    return make


# A real SMTP server of the tests' own (aiosmtpd), and an app whose mail reaches it.


@pytest.fixture(scope="session")
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as running:
        yield running


@pytest.fixture(scope="session")
def inbox(smtp: tuple[Inbox, int]) -> Inbox:
    return smtp[0]


@pytest.fixture(scope="session")
async def mail_app(database_url: str, redis_prefix: str, smtp: tuple[Inbox, int]) -> AsyncIterator[FastAPI]:
    settings: Settings = make_settings(
        database_url,
        redis_prefix,
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        smtp_from="security@example.com",
        smtp_starttls=False,
    )
    async with serving(create_app(settings)) as app:
        yield app


@pytest.fixture
async def mail_client(mail_app: FastAPI) -> AsyncIterator[ClientFactory]:
    """Clients of the app whose mail reaches `inbox`."""
    async for make in client_pool(mail_app):
        yield make


# An app whose sessions go stale after one second.
STALE_AFTER_SECONDS = 1


@pytest.fixture(scope="session")
async def stale_app(database_url: str, redis_prefix: str) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        database_url, redis_prefix, reauth_max_age_seconds=STALE_AFTER_SECONDS, mail_send=False
    )
    async with serving(create_app(settings)) as app:
        yield app


@pytest.fixture
async def stale_client(stale_app: FastAPI) -> AsyncIterator[ClientFactory]:
    """Clients of an app whose sessions stop being fresh STALE_AFTER_SECONDS after a factor."""
    async for make in client_pool(stale_app):
        yield make
