"""The outbox's tests get a database of their own (`<TEST_DATABASE>_outbox`), migrated
once per run: every running app's outbox sends whatever is due in its database, so the
session apps of tests/conftest.py (`app`, `mail_app`), on the shared test database in a
full run, would take the rows these tests want to see fail, wait, or go to a given server.
Here, the only senders are the ones each test starts. Redis and its prefix are shared.
"""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import asyncpg
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from app.ops.bootstrap import migrate
from tests.conftest import (
    TEST_DATABASE,
    ClientFactory,
    client_pool,
    drop_database,
    make_settings,
    recreate_database,
    serving,
)
from tests.fixtures.smtp import Inbox, smtp_server

SMTP_FROM = "outbox@example.com"
OUTBOX_DATABASE = f"{TEST_DATABASE}_mailbox"


@pytest.fixture(scope="session")
async def outbox_database_url() -> AsyncIterator[str]:
    url = await recreate_database(OUTBOX_DATABASE)
    await anyio.to_thread.run_sync(migrate, make_settings(url, "unused:"))
    yield url
    await drop_database(OUTBOX_DATABASE)


smtp_on = smtp_server  # the outbox tests' name for it


@pytest.fixture
def own_smtp() -> Iterator[tuple[Inbox, int]]:
    """An SMTP server of the test's own."""
    with smtp_on() as running:
        yield running


class MailApps:
    """Builds settings and apps on the outbox database."""

    def __init__(self, database_url: str, redis_prefix: str) -> None:
        self.database_url = database_url
        self.redis_prefix = redis_prefix

    def settings(self, smtp_port: int | None = None, **overrides: Any) -> Settings:
        """SMTP to 127.0.0.1:`smtp_port` (plain text), or the log sender when None."""
        smtp: dict[str, Any] = {}
        if smtp_port is not None:
            smtp = {
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp_port,
                "smtp_from": SMTP_FROM,
                "smtp_starttls": False,
            }
        return make_settings(self.database_url, self.redis_prefix, **{**smtp, **overrides})

    @asynccontextmanager
    async def serving(
        self, smtp_port: int | None = None, **overrides: Any
    ) -> AsyncIterator[tuple[FastAPI, ClientFactory]]:
        """An app (its lifespan running, its outbox sending) and a client factory."""
        async with serving(create_app(self.settings(smtp_port, **overrides))) as app:
            pool = client_pool(app)
            make = await anext(pool)
            try:
                yield app, make
            finally:
                with pytest.raises(StopAsyncIteration):
                    await anext(pool)


@pytest.fixture
def mail_apps(outbox_database_url: str, redis_prefix: str) -> MailApps:
    return MailApps(outbox_database_url, redis_prefix)


@pytest.fixture
async def db(outbox_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the outbox database, to look at the rows as they are."""
    connection = await asyncpg.connect(outbox_database_url)
    yield connection
    await connection.close()
