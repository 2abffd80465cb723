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


# Every first login from a browser also records one (tests/account/test_new_device.py):
# left out of the comparisons below unless a test names it.
NEW_DEVICE = "new_device_login"


def _without_new_devices(page: dict[str, Any], expected: list[str]) -> dict[str, Any]:
    if NEW_DEVICE in expected:
        return page
    kept = [item for item in page["items"] if item["event"] != NEW_DEVICE]
    return {**page, "items": kept, "total": page["total"] - (len(page["items"]) - len(kept))}


async def wait_for_events(client: ApiClient, expected: list[str], url: str = EVENTS) -> dict[str, Any]:
    """The page once it lists exactly `expected` (newest first), and counts them; the
    `new_device_login` events left out unless `expected` names one."""

    def done(page: dict[str, Any]) -> bool:
        shown = _without_new_devices(page, expected)
        return names(shown) == expected and shown["total"] == len(expected)

    return _without_new_devices(await wait_for(client, done, url, limit=100), expected)
