"""API.md section 4: an email change confirmed from the new address, with notices to the old one."""

import asyncio

from tests.account.helpers import API, events, logged_in, token_in
from tests.conftest import promote
from tests.fixtures.client import login, register, unique

EMAIL = f"{API}/users/me/email"
CONFIRM = f"{API}/users/me/email/confirm"


async def test_a_change_takes_effect_only_from_the_link_sent_to_the_new_address(mail_client, inbox):
    client, account = await logged_in(mail_client)
    new = f"{unique('new')}@example.com"

    response = await client.post(EMAIL, json={"email": new, "current_password": account.password})
    assert response.status_code == 202, response.text
    assert response.json()["pending_email"] == new
    # Nothing has changed yet.
    assert (await client.get(f"{API}/users/me")).json()["email"] == account.email

    confirmation = await inbox.wait_for(new, event="email_confirmation")
    requested = await inbox.wait_for(account.email, event="email_change_requested")
    token = token_in(confirmation)
    assert token not in requested.get_content()  # the old address is told, it gets nothing to click

    anyone = mail_client()  # the link may be opened in another browser
    confirmed = await anyone.post(CONFIRM, json={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["email"] == new
    assert confirmed.json()["is_verified"] is True
    await inbox.wait_for(account.email, event="email_changed")  # to the OLD address

    me = await client.get(f"{API}/users/me")
    assert me.json()["email"] == new  # the session's snapshot followed
    # The new address logs in; the token is spent.
    fresh = mail_client()
    await login(fresh, account, identifier=new)
    again = await anyone.post(CONFIRM, json={"token": token})
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalid_token"
    logged = await events(client)
    # One row per event (the notice writes it), not one from the notice and one beside it.
    assert logged.count("email_change_requested") == 1, logged
    assert logged.count("email_changed") == 1, logged


async def test_only_the_latest_request_counts(mail_client, inbox):
    client, account = await logged_in(mail_client)
    first, second = f"{unique('a')}@example.com", f"{unique('b')}@example.com"
    for address in (first, second):
        response = await client.post(EMAIL, json={"email": address, "current_password": account.password})
        assert response.status_code == 202
    old_token = token_in(await inbox.wait_for(first, event="email_confirmation"))
    new_token = token_in(await inbox.wait_for(second, event="email_confirmation"))

    stale = await client.post(CONFIRM, json={"token": old_token})
    assert stale.status_code == 400
    assert (await client.get(f"{API}/users/me")).json()["email"] == account.email
    assert (await client.post(CONFIRM, json={"token": new_token})).json()["email"] == second


async def test_the_current_password_is_required_and_checked(mail_client, inbox):
    client, account = await logged_in(mail_client)
    new = f"{unique('x')}@example.com"
    wrong = await client.post(EMAIL, json={"email": new, "current_password": "not-my-password"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "invalid_current_password"
    missing = await client.post(EMAIL, json={"email": new})
    assert missing.status_code == 422
    await asyncio.sleep(0.3)
    assert inbox.to(new) == []


async def test_an_address_taken_by_another_account_is_409_at_request_and_at_confirmation(mail_client, inbox):
    client, account = await logged_in(mail_client)
    other = await register(mail_client())
    taken = await client.post(
        EMAIL, json={"email": other.email.upper(), "current_password": account.password}
    )
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "user_already_exists"

    wanted = f"{unique('race')}@example.com"
    assert (
        await client.post(EMAIL, json={"email": wanted, "current_password": account.password})
    ).status_code == 202
    token = token_in(await inbox.wait_for(wanted, event="email_confirmation"))
    await register(mail_client(), email=wanted)  # someone registers it meanwhile
    late = await client.post(CONFIRM, json={"token": token})
    assert late.status_code == 409
    assert (await client.get(f"{API}/users/me")).json()["email"] == account.email


async def test_patch_me_no_longer_accepts_an_email(user):
    client, account = user
    response = await client.patch(
        f"{API}/users/me", json={"email": f"{unique()}@example.com", "current_password": account.password}
    )
    assert response.status_code == 422
    assert (await client.get(f"{API}/users/me")).json()["email"] == account.email


async def test_a_malformed_or_unknown_token_is_refused(client):
    for token in ("nope", "x" * 128):
        response = await client.post(CONFIRM, json={"token": token})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_token"
    assert (await client.post(CONFIRM, json={"token": "x" * 129})).status_code == 422


async def test_an_admin_sets_an_email_directly_and_the_old_address_is_told(mail_client, mail_app, inbox):
    admin, admin_account = await logged_in(mail_client)
    await promote(mail_app, admin_account.id)
    await login(admin, admin_account)  # a session that knows it is a superuser, fresh
    _, account = await logged_in(mail_client)
    new = f"{unique('adm')}@example.com"
    response = await admin.patch(f"{API}/admin/users/{account.id}", json={"email": new})
    assert response.status_code == 200, response.text
    assert response.json()["email"] == new
    notice = await inbox.wait_for(account.email, event="email_changed")
    assert notice["To"] == account.email
