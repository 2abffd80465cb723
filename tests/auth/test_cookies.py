"""API.md section 2: the cookies' names and flags, read from the raw Set-Cookie headers."""

from collections.abc import AsyncIterator

import pytest

from app.main import create_app
from tests.auth.helpers import attributes, set_cookies
from tests.conftest import client_factory, make_settings, running
from tests.fixtures.client import API, login, register


async def test_login_sets_a_host_only_secure_httponly_session_cookie(make_client, settings):
    client = make_client()
    account = await register(client)
    response = await login(client, account)
    cookies = set_cookies(response)
    assert "__Host-session" in cookies
    flags = attributes(cookies["__Host-session"])
    assert "httponly" in flags
    assert "secure" in flags
    assert flags["path"] == "/"
    assert "domain" not in flags
    assert flags["samesite"] == "Lax"
    assert flags["max-age"] == str(settings.access_token_expire_minutes * 60)
    assert response.headers["cache-control"] == "no-store"


async def test_csrf_cookie_is_readable_by_javascript_strict_and_secure(client):
    response = await client.get(f"{API}/auth/csrf")
    cookies = set_cookies(response)
    flags = attributes(cookies["__Host-csrftoken"])
    assert "httponly" not in flags
    assert "secure" in flags
    assert flags["path"] == "/"
    assert flags["samesite"] == "Strict"
    assert "domain" not in flags
    token = cookies["__Host-csrftoken"].split(";", 1)[0].split("=", 1)[1]
    assert response.json() == {"csrf_token": token}


async def test_session_token_is_opaque_random_and_new_at_every_login(make_client):
    client = make_client()
    account = await register(client)
    tokens = set()
    for _ in range(3):
        await login(client, account)
        tokens.add(client.session_token)
    assert len(tokens) == 3
    for token in tokens:
        assert token is not None
        assert len(token) >= 22  # >= 128 bits of base64url
        assert "." not in token  # not a JWT
        assert account.username not in token
        assert str(account.id) != token


@pytest.fixture(scope="module")
async def insecure_app(database_url: str, redis_prefix: str) -> AsyncIterator:
    settings = make_settings(database_url, redis_prefix, cookie_secure=False, cookie_samesite="strict")
    async for app in running(create_app(settings)):
        yield app


async def test_without_cookie_secure_the_cookies_lose_prefix_and_secure(insecure_app):
    async with client_factory(insecure_app, base_url="http://testserver")() as client:
        account = await register(client)
        response = await login(client, account)
        cookies = set_cookies(response)
        assert set(cookies) >= {"session", "csrftoken"}
        assert not any(name.startswith("__") for name in cookies)
        for header in cookies.values():
            assert "secure" not in attributes(header)
        assert attributes(cookies["session"])["samesite"] == "Strict"  # COOKIE_SAMESITE=strict
        assert (await client.get(f"{API}/users/me")).status_code == 200


async def test_only_the_cookie_names_of_the_current_setting_are_read(insecure_app, make_client):
    # A valid token under the other setting's name is not a session.
    async with client_factory(insecure_app, base_url="http://testserver")() as insecure:
        account = await register(insecure)
        await login(insecure, account)
        token = insecure.cookies.get("session")
    secure = make_client()
    response = await secure.get(f"{API}/users/me", headers={"Cookie": f"session={token}"})
    assert response.status_code == 401
    response = await secure.get(f"{API}/users/me", headers={"Cookie": f"__Host-session={token}"})
    assert response.status_code == 200


async def test_session_token_is_read_only_from_its_cookie(user, make_client):
    client, _account = user
    token = client.session_token
    stranger = make_client()
    # As a bearer header it is 401 `invalid_token` (tests/users/test_users.py).
    for kwargs in (
        {"headers": {"X-Session": token}},
        {"params": {"session": token}},
    ):
        response = await stranger.get(f"{API}/users/me", **kwargs)
        assert response.status_code == 401, kwargs
        assert response.json()["error"]["code"] == "not_authenticated"
