"""Shared helpers for the items contract tests (API.md section 6)."""

import re
from datetime import datetime
from typing import Any

import httpx

from tests.fixtures.client import API, ApiClient

ITEMS = f"{API}/items"
ITEM_FIELDS = {"id", "title", "description", "is_private", "owner_id", "created_at", "updated_at"}
ISO_8601_WITH_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
# Ids that are integers but name no item: zero, negative, past int4, past int8, past any machine integer.
NO_SUCH_IDS = ["0", "-1", str(2**31), str(2**63), "99999999999999999999"]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is `status` with the contract's envelope and `code`; returns the `error` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str), error
    assert error["message"], error
    if code == "validation_error":
        assert isinstance(error["details"], list), error
        assert error["details"], error
        for entry in error["details"]:
            assert set(entry) == {"loc", "msg", "type"}, entry
    return error


def assert_timestamp(value: Any) -> datetime:
    assert isinstance(value, str), value
    assert ISO_8601_WITH_OFFSET.match(value), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None, value
    return parsed


def assert_item_shape(item: dict[str, Any]) -> None:
    assert set(item) == ITEM_FIELDS, item
    assert isinstance(item["id"], int), item
    assert isinstance(item["title"], str), item
    assert isinstance(item["description"], str), item
    assert isinstance(item["is_private"], bool), item
    assert isinstance(item["owner_id"], int), item
    created_at = assert_timestamp(item["created_at"])
    updated_at = assert_timestamp(item["updated_at"])
    assert updated_at >= created_at, item


async def create_item(client: ApiClient, title: str, **fields: Any) -> dict[str, Any]:
    response = await client.post(ITEMS, json={"title": title, **fields})
    assert response.status_code == 201, response.text
    item = response.json()
    assert_item_shape(item)
    return item


async def list_items(client: ApiClient, **params: Any) -> dict[str, Any]:
    response = await client.get(ITEMS, params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"items", "total", "total_capped", "limit", "offset", "next_cursor"}, page
    for item in page["items"]:
        assert_item_shape(item)
    return page


def ids(page: dict[str, Any]) -> list[int]:
    return [item["id"] for item in page["items"]]


async def read_item(client: ApiClient, item_id: int) -> dict[str, Any]:
    response = await client.get(f"{ITEMS}/{item_id}")
    assert response.status_code == 200, response.text
    return response.json()
