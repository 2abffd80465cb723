"""API.md section 4: PATCH /users/me."""

import pytest

from tests.fixtures.client import API, PASSWORD, login, register, unique

NEW_PASSWORD = "a-brand-new-passphrase-42"


async def can_login(make_client, identifier: str, password: str) -> bool:
    client = make_client()
    await client.csrf_token()
    response = await client.post(f"{API}/auth/login", json={"username": identifier, "password": password})
    return response.status_code == 200


async def test_username_alone_needs_no_current_password(user):
    client, _ = user
    name = unique()
    response = await client.patch(f"{API}/users/me", json={"username": name})
    assert response.status_code == 200
    assert response.json()["username"] == name
    assert (await client.get(f"{API}/users/me")).json()["username"] == name


async def test_a_password_change_without_the_current_password_is_refused(user, make_client):
    client, account = user
    response = await client.patch(f"{API}/users/me", json={"password": NEW_PASSWORD})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_current_password"
    wrong = await client.patch(
        f"{API}/users/me", json={"password": NEW_PASSWORD, "current_password": "not-my-password"}
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "invalid_current_password"
    assert await can_login(make_client, account.email, account.password)  # nothing changed


async def test_password_change_keeps_this_session_and_ends_the_others(user, make_client):
    client, account = user
    other = make_client()
    await login(other, account)
    response = await client.patch(
        f"{API}/users/me", json={"password": NEW_PASSWORD, "current_password": account.password}
    )
    assert response.status_code == 200
    assert (await client.get(f"{API}/users/me")).status_code == 200
    assert (await other.get(f"{API}/users/me")).status_code == 401
    assert (await other.post(f"{API}/auth/refresh")).status_code == 401
    assert not await can_login(make_client, account.username, account.password)
    assert await can_login(make_client, account.username, NEW_PASSWORD)


async def test_new_password_must_meet_the_policy(user, make_client):
    client, account = user
    for weak in ("short", "password123", f"xx{account.username}xx"):
        response = await client.patch(
            f"{API}/users/me", json={"password": weak, "current_password": account.password}
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_password"
    assert await can_login(make_client, account.username, account.password)


async def test_the_email_is_not_changed_here_any_more(user):
    # API.md section 4: confirmed from the new address (tests/account/test_email_change.py).
    client, account = user
    email = f"{unique()}@example.com"
    response = await client.patch(
        f"{API}/users/me", json={"email": email, "current_password": account.password}
    )
    assert response.status_code == 422
    assert (await client.get(f"{API}/users/me")).json()["email"] == account.email


async def test_a_taken_username_is_409(user, make_client):
    client, _account = user
    other = await register(make_client())
    response = await client.patch(f"{API}/users/me", json={"username": other.username.upper()})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "user_already_exists"


@pytest.mark.parametrize(
    "body",
    [{"is_superuser": True}, {"is_active": False}, {"is_verified": True}, {"id": 1}, {"username": None}],
)
async def test_privileged_fields_are_never_writable(user, body):
    client, _ = user
    response = await client.patch(f"{API}/users/me", json=body)
    assert response.status_code == 422
    me = (await client.get(f"{API}/users/me")).json()
    assert (me["is_superuser"], me["is_active"], me["is_verified"]) == (False, True, False)


async def test_patch_me_needs_a_session_and_csrf(client, user):
    assert (await client.patch(f"{API}/users/me", json={"username": unique()})).status_code == 401
    logged_in, _ = user
    response = await logged_in.patch(f"{API}/users/me", json={"username": unique()}, csrf=False)
    assert response.status_code == 403


async def test_password_never_comes_back(user):
    client, account = user
    response = await client.patch(
        f"{API}/users/me", json={"password": NEW_PASSWORD, "current_password": account.password}
    )
    assert NEW_PASSWORD not in response.text
    assert account.password not in response.text
    assert PASSWORD not in response.text
