"""The subscription survives Redis going away: on a throwaway `redis-server` of the test's own."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.live.broadcast import BROADCASTER, RedisBroadcaster
from app.live.hub import CLOSE_REVOKED
from app.main import create_app
from app.state import state_of
from tests.conftest import client_factory, make_settings, serving
from tests.fixtures.client import login, register
from tests.fixtures.servers import ThrowawayRedis
from tests.live.conftest import cookie_of, uvicorn_serving
from tests.live.helpers import close_code, create_item, expect_event, open_socket, refused_status

pytestmark = pytest.mark.slow


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_after_a_redis_restart_revoked_sockets_close_and_new_ones_get_events(
    database_url: str, redis_prefix: str, redis_server: ThrowawayRedis
):
    settings = make_settings(database_url, redis_prefix, redis_url=redis_server.url)
    async with serving(create_app(settings)) as app, uvicorn_serving(app) as base_url:
        broadcaster = state_of(app)[BROADCASTER]
        assert isinstance(broadcaster, RedisBroadcaster)
        client = client_factory(app)()
        account = await register(client)
        await login(client, account)
        async with await open_socket(base_url, cookie=cookie_of(app, client)) as before:
            item = await create_item(client)
            await expect_event(before, "item.created", item)

            # Every session lived in that Redis: once the subscription is back, the re-check
            # of the logins closes the socket, although no revocation was ever published.
            redis_server.stop()
            assert await refused_status(base_url, cookie=cookie_of(app, client)) == 503
            await redis_server.start()
            code, _ = await close_code(before, timeout=10)
            assert code == CLOSE_REVOKED

        await asyncio.wait_for(broadcaster.subscribed.wait(), 10)
        await login(client, account)
        async with await open_socket(base_url, cookie=cookie_of(app, client)) as after:
            item = await create_item(client)
            await expect_event(after, "item.created", item)
        await client.aclose()
