"""Signing in with a provider (API.md section 11): a new identity makes a user, a linked one
logs its user in as a password login does, and the refusals that keep accounts apart."""

import asyncio

from fastapi import FastAPI

from tests.auth.helpers import attributes, set_cookies
from tests.fixtures.client import API, PASSWORD, register, unique
from tests.mfa.helpers import enable_totp
from tests.oidc.conftest import Browser
from tests.oidc.helpers import (
    OIDC,
    authorize,
    error_of,
    identities_for,
    new_email,
    sign_in,
    subject_of,
    users_with_email,
)


async def test_the_configured_providers_are_listed(browser: Browser) -> None:
    response = await browser().get(f"{OIDC}/providers")
    assert response.status_code == 200
    assert [entry["name"] for entry in response.json()] == ["test", "fault", "down", "slow"]


async def test_authorize_redirects_to_the_provider_with_pkce_state_and_nonce(browser: Browser) -> None:
    response = await authorize(browser(), next="/items")
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("http://127.0.0.1:")
    for part in ("code_challenge_method=S256", "code_challenge=", "state=", "nonce=", "response_type=code"):
        assert part in location
    cookie = set_cookies(response)["__Secure-oidc"]
    assert attributes(cookie) == {
        "httponly": "",
        "max-age": "300",
        "path": "/api/v1/auth/oidc",
        "samesite": "Lax",
        "secure": "",
    }


async def test_a_new_identity_with_a_verified_email_makes_a_verified_user_and_logs_in(
    browser: Browser, oidc_app: FastAPI
) -> None:
    client = browser()
    email = new_email("Nina.")
    response = await sign_in(client, email, next="/items?page=2")
    assert response.headers["location"] == "/items?page=2"
    cookies = set_cookies(response)
    assert {"__Host-session", "__Secure-refresh", "__Host-csrftoken", "__Host-device"} <= set(cookies)
    assert attributes(cookies["__Secure-oidc"])["max-age"] == "0"
    me = await client.get(f"{API}/users/me")
    assert me.status_code == 200
    user = me.json()
    assert user["email"] == email
    assert user["is_verified"] is True
    assert user["username"].startswith("Nina.")
    sessions = (await client.get(f"{API}/users/me/sessions")).json()
    assert [(entry["aal"], entry["amr"]) for entry in sessions] == [(1, ["oidc"])]
    events = [
        entry["event"] for entry in (await client.get(f"{API}/users/me/security-events")).json()["items"]
    ]
    assert "identity_linked" in events
    identities = (await client.get(f"{API}/users/me/identities")).json()
    assert [(row["provider"], row["subject"], row["email"]) for row in identities] == [
        ("test", subject_of(email), email)
    ]
    assert len(await users_with_email(oidc_app, email)) == 1


async def test_a_user_made_by_a_provider_has_no_password_that_logs_in(browser: Browser) -> None:
    client = browser()
    email = new_email()
    await sign_in(client, email)
    username = (await client.get(f"{API}/users/me")).json()["username"]
    other = browser()
    for tried in (PASSWORD, "", "!", "any password"):
        response = await other.post(
            f"{API}/auth/login", json={"username": username, "password": tried or "x"}
        )
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "invalid_credentials"


async def test_signing_in_again_logs_into_the_same_user(browser: Browser, oidc_app: FastAPI) -> None:
    email = new_email()
    first, second = browser(), browser()
    await sign_in(first, email)
    response = await sign_in(second, email)
    assert response.headers["location"] == "/"
    assert (await first.get(f"{API}/users/me")).json()["id"] == (await second.get(f"{API}/users/me")).json()[
        "id"
    ]
    assert len(await users_with_email(oidc_app, email)) == 1
    assert len(await identities_for(oidc_app, subject_of(email))) == 1


async def test_a_taken_username_gets_a_suffix(browser: Browser) -> None:
    client = browser()
    taken = unique("taken")
    await register(client, username=taken, email=f"{taken}@example.com")
    signed_in = browser()
    await sign_in(signed_in, f"{taken}@elsewhere.example.com")
    username = (await signed_in.get(f"{API}/users/me")).json()["username"]
    assert username != taken
    assert username.startswith(f"{taken}-")


async def test_an_email_that_a_user_has_is_never_linked_without_them(
    browser: Browser, oidc_app: FastAPI
) -> None:
    client = browser()
    account = await register(client, email=new_email("owner"))
    response = await sign_in(client, account.email)
    assert error_of(response) == "account_exists"
    assert "__Host-session" not in set_cookies(response)
    assert await identities_for(oidc_app, subject_of(account.email)) == []
    assert (await client.get(f"{API}/users/me")).status_code == 401


async def test_an_unverified_email_makes_no_user(browser: Browser, oidc_app: FastAPI) -> None:
    client = browser()
    email = new_email()
    response = await sign_in(client, f"unverified:{email}")
    assert error_of(response) == "email_not_verified"
    assert await users_with_email(oidc_app, email) == []
    assert (await client.get(f"{API}/users/me")).status_code == 401


async def test_a_user_with_a_second_factor_gets_the_challenge_instead_of_a_session(browser: Browser) -> None:
    email = new_email()
    first = browser()
    await sign_in(first, email)  # a fresh session: it may enrol
    totp, _ = await enable_totp(first)
    client = browser()
    response = await sign_in(client, email)
    assert response.headers["location"] == "/?mfa_required=1"
    cookies = set_cookies(response)
    assert "__Host-session" not in cookies
    assert attributes(cookies["__Secure-mfa"])["path"] == "/api/v1/auth"
    assert (await client.get(f"{API}/users/me")).status_code == 401
    verified = await client.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": totp.code()})
    assert verified.status_code == 200, verified.text
    assert verified.json()["user"]["email"] == email
    sessions = (await client.get(f"{API}/users/me/sessions")).json()
    assert [(entry["aal"], entry["amr"]) for entry in sessions if entry["current"]] == [(2, ["oidc", "otp"])]


async def test_an_inactive_user_is_not_signed_in(browser: Browser, oidc_app: FastAPI) -> None:
    email = new_email()
    await sign_in(browser(), email)
    from app.db import SESSIONMAKER
    from app.state import state_of

    async with state_of(oidc_app)[SESSIONMAKER]() as session:
        (user,) = await users_with_email(oidc_app, email)
        row = await session.get(type(user), user.id)
        assert row is not None
        row.is_active = False
        await session.commit()
    client = browser()
    response = await sign_in(client, email)
    assert error_of(response) == "user_inactive"
    assert (await client.get(f"{API}/users/me")).status_code == 401


async def test_a_login_from_a_new_browser_is_told_to_the_owner(browser: Browser) -> None:
    email = new_email()
    client = browser()
    await sign_in(client, email)
    # The same browser again (its device cookie is known by now): no second notice.
    await sign_in(client, email)
    events: list[str] = []
    for _ in range(100):  # a login's own event is written in the background
        page = (await client.get(f"{API}/users/me/security-events")).json()["items"]
        events = [entry["event"] for entry in page]
        if events.count("login") == 2:
            break
        await asyncio.sleep(0.05)
    assert events.count("login") == 2
    assert events.count("new_device_login") == 1
