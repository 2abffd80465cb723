"""A rotated refresh token presented after the grace period (API.md section 3) is a theft:
the user's security log says so."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.main import create_app
from tests.auth.test_refresh import REFRESH, refresh_with
from tests.conftest import client_factory, make_settings, running
from tests.fixtures.client import API, login, register
from tests.security_log.helpers import wait_for_events

GRACE_SECONDS = 1


@pytest.fixture(scope="module")
async def short_grace_app(database_url: str, redis_prefix: str) -> AsyncIterator:
    settings = make_settings(database_url, redis_prefix, refresh_reuse_grace_seconds=GRACE_SECONDS)
    async for app in running(create_app(settings)):
        yield app


async def test_a_reused_refresh_token_is_logged(short_grace_app):
    factory = client_factory(short_grace_app)
    async with factory() as client, factory() as other_device:
        account = await register(client)
        await login(client, account)
        stolen = client.cookies.get(REFRESH)
        assert (await client.post(f"{API}/auth/refresh")).status_code == 200
        await asyncio.sleep(GRACE_SECONDS + 0.2)
        assert (await refresh_with(factory(), stolen)).status_code == 401
        await login(other_device, account)
        page = await wait_for_events(other_device, ["login", "refresh_reuse_detected", "login"])
        reused, stolen_login = page["items"][1], page["items"][2]
        assert reused["details"] == {"session_id": stolen_login["details"]["session_id"]}
