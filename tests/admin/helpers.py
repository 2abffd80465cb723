"""Shared helpers for the admin tests (API.md section 5)."""

from typing import Any

import httpx

from tests.fixtures.client import API, Account, ApiClient, login

ADMIN_USERS = f"{API}/admin/users"
USER_FIELDS = {"id", "email", "username", "is_active", "is_verified", "is_superuser", "roles", "created_at"}
# Integers that name no user: zero, negative, past int4, past int8.
NO_SUCH_IDS = ["0", "-1", str(2**31), str(2**63)]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """`status` with the contract's envelope and `code`; returns the `error` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"], body
    return body["error"]


def assert_user(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) == USER_FIELDS, body
    assert body["roles"] == (["user", "admin"] if body["is_superuser"] else ["user"]), body
    return body


async def admin_get(admin: ApiClient, user_id: int) -> dict[str, Any]:
    response = await admin.get(f"{ADMIN_USERS}/{user_id}")
    assert response.status_code == 200, response.text
    return assert_user(response.json())


async def try_login(make_client: Any, identifier: str, password: str) -> httpx.Response:
    client = make_client()
    await client.csrf_token()
    return await client.post(f"{API}/auth/login", json={"username": identifier, "password": password})


async def second_login(make_client: Any, account: Account) -> ApiClient:
    """Another logged-in client (another session) of the same account."""
    client = make_client()
    await login(client, account)
    return client
