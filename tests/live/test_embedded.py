"""Live updates without Redis (the embedded default's in-process store and broadcaster),
and an origin listed in CORS_ORIGINS."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI

from app.live.broadcast import BROADCASTER, MemoryBroadcaster
from app.main import create_app
from app.state import state_of
from tests.conftest import ClientFactory, client_factory, make_settings, serving
from tests.fixtures.client import ApiClient, login, register
from tests.live.conftest import cookie_of, uvicorn_serving
from tests.live.helpers import (
    assert_logout_closes,
    create_item,
    expect_event,
    expect_marker,
    open_socket,
    refused_status,
    update_item,
)

SPA = "https://spa.example"


@dataclass
class Embedded:
    app: FastAPI
    base_url: str
    factory: ClientFactory

    async def user(self) -> ApiClient:
        client = self.factory()
        await login(client, await register(client))
        return client


@pytest.fixture(scope="module")
async def embedded(database_url: str) -> AsyncIterator[Embedded]:
    settings = make_settings(database_url, "unused:", redis_url=None, cors_origins=[SPA])
    async with serving(create_app(settings)) as app, uvicorn_serving(app) as base_url:
        assert isinstance(state_of(app)[BROADCASTER], MemoryBroadcaster)
        yield Embedded(app, base_url, client_factory(app))


async def test_items_reach_who_may_see_them_without_redis(embedded: Embedded):
    owner, other = await embedded.user(), await embedded.user()
    async with (
        await open_socket(embedded.base_url, cookie=cookie_of(embedded.app, owner)) as mine,
        await open_socket(embedded.base_url, cookie=cookie_of(embedded.app, other)) as theirs,
    ):
        item = await create_item(owner)
        secret = await create_item(owner, is_private=True)
        hidden = await update_item(owner, item["id"], is_private=True)
        await expect_event(mine, "item.created", item)
        await expect_event(mine, "item.created", secret)
        await expect_event(mine, "item.updated", hidden)
        await expect_event(theirs, "item.created", item)
        await expect_event(theirs, "item.deleted", item)
        await expect_marker(theirs, owner)


async def test_logout_closes_the_socket_with_4401_without_redis(embedded: Embedded):
    client = await embedded.user()
    async with await open_socket(embedded.base_url, cookie=cookie_of(embedded.app, client)) as ws:
        await assert_logout_closes(ws, client)


async def test_an_origin_listed_in_cors_origins_is_accepted(embedded: Embedded):
    client = await embedded.user()
    cookie = cookie_of(embedded.app, client)
    async with await open_socket(embedded.base_url, cookie=cookie, origin=SPA) as ws:
        await expect_marker(ws, client)
    assert await refused_status(embedded.base_url, cookie=cookie, origin="https://other.example") == 403
