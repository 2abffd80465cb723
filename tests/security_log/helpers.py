"""Reading the security log from a test's side. Events without a database change are
written in the background after the answer: a test polls until they are there."""

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tests.fixtures.client import API, ApiClient

EVENTS = f"{API}/users/me/security-events"
FIELDS = {"id", "event", "created_at", "ip", "user_agent", "details"}
WAIT_SECONDS = 5.0


def names(page: dict[str, Any]) -> list[str]:
    return [item["event"] for item in page["items"]]


async def read(client: ApiClient, url: str = EVENTS, **params: object) -> dict[str, Any]:
    response = await client.get(url, params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"items", "total", "limit", "offset"}, page
    for item in page["items"]:
        assert set(item) == FIELDS, item
    return page


async def wait_for(
    client: ApiClient, done: Callable[[dict[str, Any]], bool], url: str = EVENTS, **params: object
) -> dict[str, Any]:
    """The first page for which `done` holds, polled until a deadline."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        page = await read(client, url, **params)
        if done(page):
            return page
        assert time.monotonic() < deadline, f"security log not as expected within {WAIT_SECONDS} s: {page}"
        await asyncio.sleep(0.02)


async def wait_for_events(client: ApiClient, expected: list[str], url: str = EVENTS) -> dict[str, Any]:
    """The page once it lists exactly `expected` (newest first), and counts them."""
    return await wait_for(
        client, lambda page: names(page) == expected and page["total"] == len(expected), url, limit=100
    )
