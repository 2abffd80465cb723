"""An app whose mail goes to a real SMTP server of the tests' own (aiosmtpd), for the
notices and the reset mail; and an app whose sessions go stale after one second."""

from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.conftest import ClientFactory, client_pool, make_settings, serving
from tests.fixtures.smtp import Inbox, smtp_server

STALE_AFTER_SECONDS = 1


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


@pytest.fixture(scope="session")
async def stale_app(database_url: str, redis_prefix: str) -> AsyncIterator[FastAPI]:
    settings = make_settings(database_url, redis_prefix, reauth_max_age_seconds=STALE_AFTER_SECONDS)
    async with serving(create_app(settings)) as app:
        yield app


@pytest.fixture
async def stale_client(stale_app: FastAPI) -> AsyncIterator[ClientFactory]:
    """Clients of an app whose sessions stop being fresh STALE_AFTER_SECONDS after a factor."""
    async for make in client_pool(stale_app):
        yield make
