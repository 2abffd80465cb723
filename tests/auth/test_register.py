"""API.md sections 3 and 4: POST /auth/register and the password policy."""

import asyncio

import pytest

from tests.fixtures.client import API, PASSWORD, unique


def body(**overrides: str) -> dict[str, str]:
    name = unique()
    return {"email": f"{name}@example.com", "username": name, "password": PASSWORD, **overrides}


async def test_register_creates_the_user_without_logging_in(client):
    data = body()
    response = await client.post(f"{API}/auth/register", json=data)
    assert response.status_code == 201
    user = response.json()
    assert set(user) == {
        "id",
        "email",
        "username",
        "is_active",
        "is_verified",
        "is_superuser",
        "roles",
        "created_at",
    }
    assert (user["email"], user["username"]) == (data["email"], data["username"])
    assert (user["is_active"], user["is_verified"], user["is_superuser"]) == (True, False, False)
    assert user["roles"] == ["user"]
    assert user["created_at"].endswith(("Z", "+00:00"))
    assert "__Host-session" not in response.headers.get("set-cookie", "")
    assert (await client.get(f"{API}/users/me")).status_code == 401


@pytest.mark.parametrize(
    "extra", [{"is_superuser": True}, {"is_verified": True}, {"id": 1}, {"is_active": False}]
)
async def test_register_refuses_privileged_or_unknown_fields(client, extra):
    data = body()
    response = await client.post(f"{API}/auth/register", json={**data, **extra})
    assert response.status_code == 422
    # Nothing was created: the same username registers fine afterwards.
    assert (await client.post(f"{API}/auth/register", json=data)).status_code == 201


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short7!", "at least 8"),
        ("x" * 129, "at most 128"),
        ("password123", "common"),
        ("qwertyuiop", "common"),
    ],
)
async def test_password_policy_answers_400_invalid_password(client, password, why):
    response = await client.post(f"{API}/auth/register", json=body(password=password))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_password"
    assert why in error["message"]
    assert password not in response.text


async def test_password_may_not_contain_the_username_or_the_email_local_part(client):
    name = unique()
    for password, email in (
        (f"my-{name.upper()}-pass", f"{unique()}@example.com"),
        ("xx-mailbox77-xx", "Mailbox77@example.com"),
    ):
        response = await client.post(
            f"{API}/auth/register", json={"email": email, "username": name, "password": password}
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_password"


async def test_password_lengths_8_and_128_and_passphrases_are_accepted(client):
    for password in (
        "kT9#mQ2z",
        "k" * 64 + "T9#mQ2z" + "q" * 57,
        "correct horse battery staple",
        "pässwörd-ünïcode-ok",
    ):
        response = await client.post(f"{API}/auth/register", json=body(password=password))
        assert response.status_code == 201, (len(password), response.text)


async def test_taken_username_or_email_in_any_case_is_409(client):
    data = body()
    assert (await client.post(f"{API}/auth/register", json=data)).status_code == 201
    for clash in (
        body(username=data["username"].upper()),
        body(email=data["email"].upper()),
        body(email=data["email"], username=unique()),
    ):
        response = await client.post(f"{API}/auth/register", json=clash)
        assert response.status_code == 409, clash
        assert response.json()["error"]["code"] == "user_already_exists"


async def test_concurrent_registrations_of_one_username_give_exactly_one_201(make_client):
    name = unique()
    clients = [make_client() for _ in range(8)]
    for client in clients:
        await client.csrf_token()

    async def attempt(i: int, client) -> int:
        response = await client.post(
            f"{API}/auth/register",
            json={
                "email": f"{name}.{i}@example.com",
                "username": name.upper() if i % 2 else name,
                "password": PASSWORD,
            },
        )
        return response.status_code

    statuses = await asyncio.gather(*(attempt(i, c) for i, c in enumerate(clients)))
    assert sorted(statuses) == [201] + [409] * 7


async def test_concurrent_registrations_of_one_email_give_exactly_one_201(make_client):
    email = f"{unique()}@example.com"
    clients = [make_client() for _ in range(8)]
    for client in clients:
        await client.csrf_token()
    statuses = await asyncio.gather(
        *(
            c.post(f"{API}/auth/register", json={"email": email, "username": unique(), "password": PASSWORD})
            for c in clients
        )
    )
    assert sorted(r.status_code for r in statuses) == [201] + [409] * 7


@pytest.mark.parametrize(
    "overrides",
    [
        {"email": "not-an-email"},
        {"username": "a@b"},
        {"username": "ab"},
        {"username": "x" * 51},
        {"username": "has space"},
    ],
)
async def test_invalid_email_or_username_is_422(client, overrides):
    response = await client.post(f"{API}/auth/register", json=body(**overrides))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
