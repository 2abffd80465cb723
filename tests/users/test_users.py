"""API.md section 4: GET /users/me and GET /users/{id}."""

from datetime import datetime

import pytest

from app.auth.cookies import COOKIES
from app.main import create_app
from app.state import state_of
from tests.conftest import client_factory, make_settings, serving
from tests.fixtures.client import API, login, register

FULL_FIELDS = {"id", "email", "username", "is_active", "is_verified", "is_superuser", "roles", "created_at"}
PUBLIC_FIELDS = {"id", "username", "created_at"}
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"
CLOSED_PORT_POSTGRES = "postgresql://postgres@127.0.0.1:1/nothing"


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def assert_aware_timestamp(value: str) -> None:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None, value


def assert_no_password(response, password: str) -> None:
    text = response.text.lower()
    assert "password" not in text
    assert "hashed" not in text
    assert password.lower() not in text


# --- GET /users/me ------------------------------------------------------------------------


async def test_me_returns_exactly_the_users_own_fields(user):
    client, account = user
    response = await client.get(f"{API}/users/me")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == FULL_FIELDS
    assert body["id"] == account.id
    assert body["email"] == account.email
    assert body["username"] == account.username
    assert body["is_active"] is True
    assert body["is_verified"] is False
    assert body["is_superuser"] is False
    assert body["roles"] == ["user"]
    assert_aware_timestamp(body["created_at"])
    assert_no_password(response, account.password)


async def test_me_for_an_admin_has_the_admin_role(make_admin):
    client, account = await make_admin()
    response = await client.get(f"{API}/users/me")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == FULL_FIELDS
    assert body["id"] == account.id
    assert body["is_superuser"] is True
    assert body["roles"] == ["user", "admin"]
    assert_no_password(response, account.password)


async def test_me_without_a_cookie_is_401_not_authenticated(client):
    assert_error(await client.get(f"{API}/users/me"), 401, "not_authenticated")


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "",
        "x" * 127,
        "x" * 128,
        "x" * 129,
        "x" * 8000,
        '"quoted"',
        "a=b=c",
        "%00%ff%0a",
        "../../etc/passwd",
        "\\u0000",
        "s:*",
        "*",
        "' OR 1=1 --",
    ],
    ids=lambda value: value[:16] or "empty",
)
async def test_me_with_a_garbage_session_cookie_is_401_never_5xx(app, make_client, value):
    client = make_client()
    response = await client.get(
        f"{API}/users/me", headers={"Cookie": f"{state_of(app)[COOKIES].session}={value}"}
    )
    assert_error(response, 401, "not_authenticated")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (b"caf\xc3\xa9", True),
        (b"\xff\xfe\xfd", True),
        (b"a;b;c;;;", True),
        (b"=;=;=", True),
        (b"\x7f\x01", False),
        (b'"unterminated', False),
        (b'"a\\"', False),
        (b'x"y', False),
    ],
    ids=["utf8", "latin1", "semicolons", "equals", "control", "unterminated", "escaped-quote", "inner-quote"],
)
async def test_me_with_odd_session_cookie_bytes_is_401_or_400_never_5xx(app, make_client, raw, clean):
    # A header that parses cleanly names no session (401). One that does not is refused
    # before authentication or CSRF (app/cookie_header.py): where two parsers could read
    # it differently, none reads it.
    client = make_client()
    header = state_of(app)[COOKIES].session.encode() + b"=" + raw
    response = await client.get(f"{API}/users/me", headers={"Cookie": header})
    if clean:
        assert_error(response, 401, "not_authenticated")
    else:
        assert_error(response, 400, "bad_request")
        assert response.headers["connection"] == "close"


async def test_me_with_a_malformed_cookie_header_is_401_never_5xx(make_client):
    client = make_client()
    for header in ("just-junk", ";;;", "=", "a" * 8_000):
        response = await client.get(f"{API}/users/me", headers={"Cookie": header})
        assert_error(response, 401, "not_authenticated")


async def test_me_with_the_session_cookie_of_a_logged_out_session_is_401(user, make_client):
    client, _ = user
    token = client.session_token
    assert token
    logout = await client.post(f"{API}/auth/logout")
    assert logout.status_code == 200
    stale = make_client()
    response = await stale.get(f"{API}/users/me", headers={"Cookie": f"{client.session_cookie}={token}"})
    assert_error(response, 401, "not_authenticated")


async def test_me_only_reads_the_session_from_its_cookie(user, make_client):
    client, _ = user
    token = client.session_token
    other = make_client()
    for headers, params in (
        ({"X-Session": token}, None),
        ({}, {"session": token}),
        ({"Cookie": f"session-copy={token}"}, None),
    ):
        response = await other.get(f"{API}/users/me", headers=headers, params=params)
        assert_error(response, 401, "not_authenticated")
    # A bearer header is read, but only a personal access token is one (API.md section 11).
    response = await other.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "invalid_token")


# --- GET /users/{id} ------------------------------------------------------------------------


async def test_anonymous_caller_sees_only_the_public_profile(client, user):
    _, account = user
    response = await client.get(f"{API}/users/{account.id}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == PUBLIC_FIELDS
    assert body["id"] == account.id
    assert body["username"] == account.username
    assert_aware_timestamp(body["created_at"])
    assert account.email not in response.text
    assert_no_password(response, account.password)


async def test_another_user_sees_only_the_public_profile(user, make_client):
    _, account = user
    other = make_client()
    await login(other, await register(other))
    response = await other.get(f"{API}/users/{account.id}")
    assert response.status_code == 200
    assert set(response.json()) == PUBLIC_FIELDS
    assert account.email not in response.text


async def test_the_user_itself_sees_its_full_record(user):
    client, account = user
    response = await client.get(f"{API}/users/{account.id}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == FULL_FIELDS
    assert body["email"] == account.email
    assert body["roles"] == ["user"]
    assert body == (await client.get(f"{API}/users/me")).json()
    assert_no_password(response, account.password)


async def test_an_admin_sees_the_full_record_of_anyone(user, make_admin):
    _, account = user
    admin, _ = await make_admin()
    response = await admin.get(f"{API}/users/{account.id}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == FULL_FIELDS
    assert body["id"] == account.id
    assert body["email"] == account.email
    assert body["is_superuser"] is False
    assert body["roles"] == ["user"]
    assert_no_password(response, account.password)


async def test_public_profile_of_an_admin_does_not_reveal_the_role(client, make_admin):
    _, admin_account = await make_admin()
    response = await client.get(f"{API}/users/{admin_account.id}")
    assert response.status_code == 200
    assert set(response.json()) == PUBLIC_FIELDS


@pytest.mark.parametrize(
    "user_id",
    [
        "0",
        "-1",
        "-2147483648",
        "2147483647",
        "2147483648",
        "9223372036854775807",
        "9223372036854775808",
        "1" + "0" * 24,
        "-" + "9" * 25,
        "000",
    ],
)
async def test_unknown_or_impossible_user_id_is_404_never_500(client, user_id):
    assert_error(await client.get(f"{API}/users/{user_id}"), 404, "not_found")


async def test_unknown_user_id_is_404_for_a_logged_in_caller_and_an_admin(user, make_admin):
    logged_in, _ = user
    admin, _ = await make_admin()
    for caller in (logged_in, admin):
        for user_id in ("0", "-1", "2147483647", "2147483648", "1" + "0" * 24):
            assert_error(await caller.get(f"{API}/users/{user_id}"), 404, "not_found")


@pytest.mark.parametrize("user_id", ["abc", "1.5", "1e3", "0x10", "%20", "one", "1;2", "true"])
async def test_non_integer_user_id_is_422(client, user_id):
    response = await client.get(f"{API}/users/{user_id}")
    assert_error(response, 422, "validation_error")
    details = response.json()["error"]["details"]
    assert details[0]["loc"] == ["path", "user_id"]


async def test_public_profile_with_a_garbage_cookie_is_still_served(app, make_client, user):
    _, account = user
    client = make_client()
    response = await client.get(
        f"{API}/users/{account.id}", headers={"Cookie": f"{state_of(app)[COOKIES].session}=garbage"}
    )
    assert response.status_code == 200
    assert set(response.json()) == PUBLIC_FIELDS


# --- fail closed -------------------------------------------------------------------------------


async def test_me_with_a_session_cookie_is_503_not_401_while_redis_is_down(database_url, redis_prefix):
    app = create_app(make_settings(database_url, redis_prefix, redis_url=CLOSED_PORT_REDIS))
    async with serving(app), client_factory(app)() as client:
        response = await client.get(
            f"{API}/users/me", headers={"Cookie": f"{state_of(app)[COOKIES].session}=some-session-token"}
        )
        assert_error(response, 503, "service_unavailable")
        assert int(response.headers["retry-after"]) > 0


async def test_user_profile_is_503_not_500_while_the_database_is_down(redis_prefix):
    app = create_app(make_settings(CLOSED_PORT_POSTGRES, redis_prefix))
    async with serving(app), client_factory(app)() as client:
        response = await client.get(f"{API}/users/1")
        assert_error(response, 503, "service_unavailable")
        assert int(response.headers["retry-after"]) > 0
