"""Linking and unlinking identities (API.md section 11): only from a fresh session, never
one that another user has, never the account's last way in; they go with the account and
appear in its export."""

import asyncio

from fastapi import FastAPI

from tests.fixtures.client import API, login, register
from tests.oidc.conftest import STALE_AFTER_SECONDS, Browser
from tests.oidc.helpers import (
    authorize,
    error_of,
    forget_provider_login,
    identities_for,
    new_email,
    sign_in,
    subject_of,
)


async def password_user(browser: Browser):  # type: ignore[no-untyped-def]
    client = browser()
    account = await register(client, email=new_email("pw"))
    await login(client, account)
    return client, account


async def test_a_fresh_session_links_an_identity_that_then_logs_in(browser: Browser) -> None:
    client, account = await password_user(browser)
    login_name = new_email("elsewhere")  # the provider's email need not be the account's
    response = await sign_in(client, login_name, link="true", next="/security")
    assert response.headers["location"] == "/security"
    identities = (await client.get(f"{API}/users/me/identities")).json()
    assert [(row["provider"], row["subject"]) for row in identities] == [("test", subject_of(login_name))]
    events = [
        entry["event"] for entry in (await client.get(f"{API}/users/me/security-events")).json()["items"]
    ]
    assert "identity_linked" in events
    other = browser()
    await sign_in(other, login_name)
    assert (await other.get(f"{API}/users/me")).json()["id"] == account.id


async def test_linking_needs_a_session(browser: Browser) -> None:
    response = await authorize(browser(), link="true")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "reauthentication_required"


async def test_linking_needs_a_fresh_session(stale_browser: Browser) -> None:
    client, _ = await password_user(stale_browser)
    await asyncio.sleep(STALE_AFTER_SECONDS + 0.2)
    response = await authorize(client, link="true")
    assert response.status_code == 403
    body = response.json()["error"]
    assert body["code"] == "reauthentication_required"
    assert body["details"] == {"methods": ["password"]}


async def test_an_identity_another_user_has_is_not_linked(browser: Browser, oidc_app: FastAPI) -> None:
    taken = new_email()
    await sign_in(browser(), taken)  # its own user now
    client, _ = await password_user(browser)
    response = await sign_in(client, taken, link="true")
    assert error_of(response) == "identity_in_use"
    assert (await client.get(f"{API}/users/me/identities")).json() == []
    assert len(await identities_for(oidc_app, subject_of(taken))) == 1


async def test_unlinking_an_identity_stops_it_logging_in(browser: Browser) -> None:
    client, _ = await password_user(browser)
    login_name = new_email()
    await sign_in(client, login_name, link="true")
    (identity,) = (await client.get(f"{API}/users/me/identities")).json()
    response = await client.delete(f"{API}/users/me/identities/{identity['id']}")
    assert response.status_code == 204
    assert (await client.get(f"{API}/users/me/identities")).json() == []
    events = [
        entry["event"] for entry in (await client.get(f"{API}/users/me/security-events")).json()["items"]
    ]
    assert "identity_unlinked" in events
    # The identity is nobody's now: signing in with it makes a user of its own.
    other = browser()
    await sign_in(other, login_name)
    assert (await other.get(f"{API}/users/me")).json()["email"] == login_name


async def test_the_last_way_to_log_in_cannot_be_unlinked(browser: Browser) -> None:
    client = browser()
    await sign_in(client, new_email())  # no password, no passkey: the identity is all it has
    (identity,) = (await client.get(f"{API}/users/me/identities")).json()
    response = await client.delete(f"{API}/users/me/identities/{identity['id']}")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert len((await client.get(f"{API}/users/me/identities")).json()) == 1


async def test_one_of_two_identities_can_be_unlinked(browser: Browser) -> None:
    client = browser()
    await sign_in(client, new_email())
    forget_provider_login(client)  # a second account at the provider
    await sign_in(client, new_email(), link="true")  # the sign-in's session is fresh
    first, _second = (await client.get(f"{API}/users/me/identities")).json()
    assert (await client.delete(f"{API}/users/me/identities/{first['id']}")).status_code == 204
    (left,) = (await client.get(f"{API}/users/me/identities")).json()
    assert (await client.delete(f"{API}/users/me/identities/{left['id']}")).status_code == 409


async def test_someone_elses_identity_is_not_found(browser: Browser) -> None:
    owner = browser()
    await sign_in(owner, new_email())
    (identity,) = (await owner.get(f"{API}/users/me/identities")).json()
    client, _ = await password_user(browser)
    response = await client.delete(f"{API}/users/me/identities/{identity['id']}")
    assert response.status_code == 404
    assert len((await owner.get(f"{API}/users/me/identities")).json()) == 1


async def test_unlinking_needs_a_fresh_session(stale_browser: Browser) -> None:
    client, _ = await password_user(stale_browser)
    await sign_in(client, new_email(), "test", link="true")
    (identity,) = (await client.get(f"{API}/users/me/identities")).json()
    await asyncio.sleep(STALE_AFTER_SECONDS + 0.2)
    response = await client.delete(f"{API}/users/me/identities/{identity['id']}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "reauthentication_required"


async def test_the_export_lists_identities_without_secrets(browser: Browser) -> None:
    client = browser()
    email = new_email()
    await sign_in(client, email)
    export = await client.get(f"{API}/users/me/export")
    assert export.status_code == 200, export.text
    (identity,) = export.json()["identities"]
    assert set(identity) == {"id", "provider", "subject", "email", "created_at"}
    assert identity["subject"] == subject_of(email)


async def test_deleting_the_account_removes_its_identities(browser: Browser, oidc_app: FastAPI) -> None:
    client = browser()
    email = new_email()
    await sign_in(client, email)
    first_id = (await client.get(f"{API}/users/me")).json()["id"]
    assert (await client.delete(f"{API}/users/me")).status_code == 204
    assert await identities_for(oidc_app, subject_of(email)) == []
    again = browser()
    await sign_in(again, email)
    assert (await again.get(f"{API}/users/me")).json()["id"] != first_id
