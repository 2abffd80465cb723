"""API.md section 2: every unsafe method under /api/ needs a valid, session-bound CSRF token
and, when an Origin is sent, our own origin or a configured one."""

from collections.abc import AsyncIterator

import pytest
from itsdangerous import URLSafeTimedSerializer

from app.main import create_app
from tests.conftest import client_factory, make_settings, running
from tests.fixtures.client import API, PASSWORD, login, register, unique


def assert_csrf_failed(response) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "csrf_failed"


async def count_items(client, marker: str) -> int:
    response = await client.get(f"{API}/items", params={"q": marker})
    return response.json()["total"]


async def test_unsafe_request_without_the_header_is_refused_and_changes_nothing(user):
    client, _ = user
    marker = unique("csrf")
    response = await client.post(f"{API}/items", json={"title": marker}, csrf=False)
    assert_csrf_failed(response)
    assert await count_items(client, marker) == 0


async def test_header_that_differs_from_the_cookie_is_refused(user, make_client):
    client, _ = user
    other_token = await make_client().csrf_token()  # validly signed, but not this browser's cookie
    response = await client.post(f"{API}/items", json={"title": "x"}, headers={"X-CSRF-Token": other_token})
    assert_csrf_failed(response)


async def test_token_signed_with_another_key_is_refused(user):
    client, _ = user
    forged = URLSafeTimedSerializer("attacker-key-" * 4, salt="csrf-token").dumps({"n": "x", "b": ""})
    client.cookies.set("__Host-csrftoken", forged)
    response = await client.post(f"{API}/items", json={"title": "x"}, headers={"X-CSRF-Token": forged})
    assert_csrf_failed(response)


async def test_one_users_token_does_not_work_in_another_users_session(user, make_client):
    alice, _ = user
    bob = make_client()
    await login(bob, await register(bob))
    bobs_token = bob.cookies.get("__Host-csrftoken")
    alice.cookies.set("__Host-csrftoken", bobs_token)
    response = await alice.post(f"{API}/items", json={"title": "x"}, headers={"X-CSRF-Token": bobs_token})
    assert_csrf_failed(response)


async def test_token_from_before_login_stops_working_at_login(make_client):
    client = make_client()
    account = await register(client)
    before = await client.csrf_token()
    response = await login(client, account)
    assert response.json()["csrf_token"] != before
    assert response.json()["csrf_token"] == client.cookies.get("__Host-csrftoken")
    client.cookies.set("__Host-csrftoken", before)
    response = await client.post(f"{API}/items", json={"title": "x"}, headers={"X-CSRF-Token": before})
    assert_csrf_failed(response)


async def test_asking_again_returns_the_token_the_browser_holds(user, make_client):
    # Two tabs share the cookie jar: one tab's GET /auth/csrf must not invalidate the
    # token the other tab holds in memory.
    client, _ = user
    held = client.cookies.get("__Host-csrftoken")
    again = await client.get(f"{API}/auth/csrf")
    assert again.json()["csrf_token"] == held
    assert again.cookies.get("__Host-csrftoken") == held  # and sets the cookie all the same
    assert (
        await client.post(f"{API}/items", json={"title": "x"}, headers={"X-CSRF-Token": held})
    ).status_code == 201
    # A token that is not good for this session is not handed out again.
    response = await make_client().get(f"{API}/auth/csrf", headers={"Cookie": f"__Host-csrftoken={held}"})
    fresh = response.json()["csrf_token"]
    assert fresh != held
    assert response.cookies.get("__Host-csrftoken") == fresh


async def test_login_and_register_need_the_token_too(client):
    account_name = unique()
    response = await client.post(
        f"{API}/auth/register",
        json={"email": f"{account_name}@example.com", "username": account_name, "password": PASSWORD},
        csrf=False,
    )
    assert_csrf_failed(response)
    response = await client.post(
        f"{API}/auth/login", json={"username": account_name, "password": PASSWORD}, csrf=False
    )
    assert_csrf_failed(response)
    assert "set-cookie" not in response.headers


async def test_logout_without_the_token_keeps_the_session(user):
    client, _ = user
    assert_csrf_failed(await client.post(f"{API}/auth/logout", csrf=False))
    assert (await client.get(f"{API}/users/me")).status_code == 200


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "null",
        "https://testserver.evil.example",
        "http://testserver",
        "https://testserver:8443",
    ],
)
async def test_foreign_origin_is_refused_even_with_a_valid_token(user, origin):
    client, _ = user
    marker = unique("origin")
    response = await client.post(f"{API}/items", json={"title": marker}, headers={"Origin": origin})
    assert_csrf_failed(response)
    assert await count_items(client, marker) == 0


async def test_own_origin_is_accepted(user):
    client, _ = user
    response = await client.post(
        f"{API}/items", json={"title": "mine"}, headers={"Origin": "https://testserver"}
    )
    assert response.status_code == 201


async def test_safe_methods_and_routes_outside_the_api_need_no_token(client):
    assert (await client.get(f"{API}/items")).status_code == 200
    assert (await client.get("/healthz", headers={"Origin": "https://evil.example"})).status_code == 200


@pytest.fixture(scope="module")
async def cors_app(database_url: str, redis_prefix: str) -> AsyncIterator:
    settings = make_settings(
        database_url, redis_prefix, cors_origins="https://app.example, https://admin.example"
    )
    async for app in running(create_app(settings)):
        yield app


async def test_origins_listed_in_cors_origins_are_accepted(cors_app):
    async with client_factory(cors_app)() as client:
        account = await register(
            client,
        )
        response = await client.post(
            f"{API}/auth/login",
            json={"username": account.username, "password": account.password},
            headers={"Origin": "https://admin.example"},
        )
        assert response.status_code == 200
        response = await client.post(
            f"{API}/items", json={"title": "x"}, headers={"Origin": "https://other.example"}
        )
        assert_csrf_failed(response)
