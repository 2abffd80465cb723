"""Passkeys (API.md section 9): registering one, logging in with it alone or as a second
factor, re-authenticating with it, removing it, and the assertions the server must refuse
(another user's passkey, replays, a foreign origin or RP id, no user verification, a
counter gone backwards, an inactive user, no challenge, malformed credentials)."""

import asyncio
import base64
import json
import types

import pytest

from tests.fixtures import authenticator as authenticator_module
from tests.fixtures.authenticator import SoftAuthenticator, b64url_decode
from tests.fixtures.client import API, login, register
from tests.mfa.helpers import add_passkey, enable_totp, password_step, soft_authenticator

MFA_COOKIE = "__Secure-mfa"


def code_of(response) -> str:
    return response.json()["error"]["code"]


def expect_error(response, status: int, code: str) -> None:
    assert (response.status_code, code_of(response)) == (status, code), response.text


async def passkey_user(make_client):
    """A registered, logged-in user with one passkey; (client, account, authenticator, 201 body)."""
    client = make_client()
    account = await register(client)
    await login(client, account)
    authenticator = soft_authenticator()
    created = (await add_passkey(client, authenticator)).json()
    return client, account, authenticator, created


async def passkey_login(client, authenticator: SoftAuthenticator, **knobs):
    options = await client.post(f"{API}/auth/passkey/options")
    assert options.status_code == 200, options.text
    credential = authenticator.get(options.json()["publicKey"], **knobs)
    return await client.post(f"{API}/auth/passkey/login", json={"credential": credential})


async def second_step(client, account, authenticator: SoftAuthenticator, **knobs):
    """The password step, then a passkey assertion for the second one."""
    await password_step(client, account)
    options = await client.post(f"{API}/auth/mfa/webauthn/options")
    assert options.status_code == 200, options.text
    credential = authenticator.get(options.json()["publicKey"], **knobs)
    return await client.post(f"{API}/auth/mfa/verify", json={"method": "webauthn", "credential": credential})


async def current_session(client) -> dict:
    response = await client.get(f"{API}/users/me/sessions")
    assert response.status_code == 200, response.text
    (current,) = [entry for entry in response.json() if entry["current"]]
    return current


async def mfa_status(client) -> dict:
    response = await client.get(f"{API}/users/me/mfa")
    assert response.status_code == 200, response.text
    return response.json()


async def test_register_a_passkey_then_log_in_with_it_alone(make_client):
    client, account, authenticator, created = await passkey_user(make_client)
    assert set(created) == {"id", "name", "created_at", "last_used_at", "recovery_codes"}
    assert (created["name"], created["last_used_at"]) == ("laptop", None)
    assert (await client.post(f"{API}/auth/logout")).status_code == 200
    assert (await client.get(f"{API}/users/me")).status_code == 401

    options = await client.post(f"{API}/auth/passkey/options")
    assert options.status_code == 200, options.text
    request = options.json()["publicKey"]
    assert (request["rpId"], request["userVerification"]) == ("testserver", "required")
    assert not request.get("allowCredentials")  # a discoverable credential: the passkey names the user
    credential = authenticator.get(request)
    response = await client.post(f"{API}/auth/passkey/login", json={"credential": credential})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["id"] == account.id
    assert body["csrf_token"]
    assert body["expires_in"] > 0
    assert client.cookies.get(MFA_COOKIE) is None  # the challenge cookie is cleared
    me = await client.get(f"{API}/users/me")
    assert (me.status_code, me.json()["username"]) == (200, account.username)
    current = await current_session(client)
    assert (current["aal"], current["amr"]) == (2, ["webauthn"])
    # ...and is fresh: it may register another passkey.
    assert (await client.post(f"{API}/users/me/passkeys/options")).status_code == 200
    (listed,) = (await mfa_status(client))["passkeys"]
    assert listed["id"] == created["id"]
    assert listed["last_used_at"] is not None


async def test_first_passkey_brings_codes_and_logs_out_other_sessions_second_brings_none(make_client):
    client, other = make_client(), make_client()
    account = await register(client)
    await login(client, account)
    await login(other, account)
    assert (await other.get(f"{API}/users/me")).status_code == 200

    first = (await add_passkey(client, soft_authenticator(), "laptop")).json()
    codes = first["recovery_codes"]
    assert len(set(codes)) == len(codes) == 10
    assert (await other.get(f"{API}/users/me")).status_code == 401
    assert (await other.post(f"{API}/auth/refresh")).status_code == 401
    assert (await client.get(f"{API}/users/me")).status_code == 200
    current = await current_session(client)
    assert current["aal"] == 2
    assert "webauthn" in current["amr"]

    second = (await add_passkey(client, soft_authenticator(), "phone")).json()
    assert second["recovery_codes"] is None
    status = await mfa_status(client)
    assert [p["name"] for p in status["passkeys"]] == ["laptop", "phone"]
    assert status["recovery_codes_left"] == 10


async def test_creation_options_exclude_registered_passkeys_and_hide_the_user(make_client):
    client, account, authenticator, _ = await passkey_user(make_client)
    response = await client.post(f"{API}/users/me/passkeys/options")
    assert response.status_code == 200, response.text
    options = response.json()["publicKey"]
    (held,) = authenticator.credentials
    assert held.id_b64 in [c["id"] for c in options["excludeCredentials"]]
    assert options["rp"]["id"] == "testserver"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    handle = b64url_decode(options["user"]["id"])
    assert handle == held.user_handle  # stable for the user
    for revealing in (str(account.id), account.email, account.username):
        assert revealing.encode() not in handle
    assert handle != account.id.to_bytes(8, "big")
    assert options["user"]["id"] != str(account.id)


async def test_the_same_credential_registered_twice_is_409(make_client, monkeypatch):
    client, _, authenticator, _ = await passkey_user(make_client)
    (held,) = authenticator.credentials
    options = (await client.post(f"{API}/users/me/passkeys/options")).json()["publicKey"]
    options.pop("excludeCredentials")  # as a browser that ignored it would
    # A new response to the new challenge, for the credential id registered already.
    monkeypatch.setattr(authenticator_module, "secrets", types.SimpleNamespace(token_bytes=lambda _: held.id))
    again = soft_authenticator().create(options)
    monkeypatch.undo()
    assert again["id"] == held.id_b64
    response = await client.post(f"{API}/users/me/passkeys", json={"name": "again", "credential": again})
    assert response.status_code == 409, response.text
    assert len((await mfa_status(client))["passkeys"]) == 1


async def test_password_login_asks_for_the_passkey_as_second_factor(make_client):
    client, account, authenticator, _ = await passkey_user(make_client)
    await client.post(f"{API}/auth/logout")
    step = await password_step(client, account)
    assert "webauthn" in step.json()["methods"]
    assert (await client.get(f"{API}/users/me")).status_code == 401

    options = (await client.post(f"{API}/auth/mfa/webauthn/options")).json()["publicKey"]
    assert authenticator.credentials[0].id_b64 in [c["id"] for c in options["allowCredentials"]]
    credential = authenticator.get(options)
    response = await client.post(
        f"{API}/auth/mfa/verify", json={"method": "webauthn", "credential": credential}
    )
    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == account.id
    current = await current_session(client)
    assert (current["aal"], current["amr"]) == (2, ["pwd", "webauthn"])
    # The same assertion again: the step is over.
    replay = await client.post(
        f"{API}/auth/mfa/verify", json={"method": "webauthn", "credential": credential}
    )
    expect_error(replay, 401, "mfa_challenge_expired")


async def test_another_users_passkey_does_not_pass_the_second_step(make_client):
    _, _, alice_key, _ = await passkey_user(make_client)
    bob_client, bob, _, _ = await passkey_user(make_client)
    await bob_client.post(f"{API}/auth/logout")
    response = await second_step(bob_client, bob, alice_key, credential_id=alice_key.credentials[0].id)
    assert response.status_code == 400, response.text
    assert code_of(response) == "invalid_passkey"
    assert (await bob_client.get(f"{API}/users/me")).status_code == 401


async def test_a_replayed_assertion_is_refused(make_client):
    client, _, authenticator, _ = await passkey_user(make_client)
    await client.post(f"{API}/auth/logout")
    options = (await client.post(f"{API}/auth/passkey/options")).json()["publicKey"]
    mfa_cookie = client.cookies.get(MFA_COOKIE)
    credential = authenticator.get(options)
    first = await client.post(f"{API}/auth/passkey/login", json={"credential": credential})
    assert first.status_code == 200, first.text
    await client.post(f"{API}/auth/logout")

    # The same response with the same challenge cookie: that step is over.
    replayer = make_client()
    replayer.cookies.set(MFA_COOKIE, mfa_cookie)
    same = await replayer.post(f"{API}/auth/passkey/login", json={"credential": credential})
    expect_error(same, 401, "mfa_challenge_expired")
    # The same response under a new challenge, and a fresh signature over the old challenge.
    replayer = make_client()
    await replayer.post(f"{API}/auth/passkey/options")
    stale = await replayer.post(f"{API}/auth/passkey/login", json={"credential": credential})
    expect_error(stale, 400, "invalid_passkey")
    old_challenge = await passkey_login(replayer, authenticator, challenge=options["challenge"])
    expect_error(old_challenge, 400, "invalid_passkey")
    assert (await replayer.get(f"{API}/users/me")).status_code == 401
    # The passkey itself still works.
    assert (await passkey_login(replayer, authenticator)).status_code == 200


@pytest.mark.parametrize("knob", [{"origin": "https://evil.example"}, {"rp_id": "evil.example"}])
async def test_a_foreign_origin_or_rp_id_is_refused(make_client, knob):
    client, account, authenticator, _ = await passkey_user(make_client)
    await client.post(f"{API}/auth/logout")
    alone = await passkey_login(client, authenticator, **knob)
    expect_error(alone, 400, "invalid_passkey")
    second = await second_step(client, account, authenticator, **knob)
    expect_error(second, 400, "invalid_passkey")
    assert (await client.get(f"{API}/users/me")).status_code == 401
    # Registering for a foreign origin or RP id is refused too.
    fresh = make_client()
    await login(fresh, await register(fresh))
    options = (await fresh.post(f"{API}/users/me/passkeys/options")).json()["publicKey"]
    credential = soft_authenticator().create(options, **knob)
    response = await fresh.post(f"{API}/users/me/passkeys", json={"name": "evil", "credential": credential})
    expect_error(response, 400, "invalid_passkey")
    assert (await mfa_status(fresh))["passkeys"] == []


async def test_passwordless_login_without_user_verification_is_refused(make_client):
    client = make_client()
    await login(client, await register(client))
    authenticator = soft_authenticator(user_verification=False)
    await add_passkey(client, authenticator)  # "preferred" at registration
    await client.post(f"{API}/auth/logout")
    response = await passkey_login(client, authenticator)
    expect_error(response, 401, "invalid_credentials")
    assert (await client.get(f"{API}/users/me")).status_code == 401


async def test_a_signature_counter_gone_backwards_is_refused(make_client):
    client, _, authenticator, _ = await passkey_user(make_client)
    await client.post(f"{API}/auth/logout")
    assert (await passkey_login(client, authenticator)).status_code == 200  # counter 1
    await client.post(f"{API}/auth/logout")
    authenticator.credentials[0].sign_count = 0  # a clone: sends 1 again
    response = await passkey_login(client, authenticator)
    expect_error(response, 401, "invalid_credentials")
    assert (await client.get(f"{API}/users/me")).status_code == 401


async def test_a_deactivated_users_passkey_login_is_403(make_client, make_admin):
    client, account, authenticator, _ = await passkey_user(make_client)
    await client.post(f"{API}/auth/logout")
    admin, _ = await make_admin()
    patched = await admin.patch(f"{API}/admin/users/{account.id}", json={"is_active": False})
    assert patched.status_code == 200, patched.text
    response = await passkey_login(client, authenticator)
    expect_error(response, 403, "user_inactive")
    assert (await client.get(f"{API}/users/me")).status_code == 401


async def test_passkey_login_without_a_challenge_cookie(make_client):
    client, _, authenticator, _ = await passkey_user(make_client)
    await client.post(f"{API}/auth/logout")
    options = (await client.post(f"{API}/auth/passkey/options")).json()["publicKey"]
    credential = authenticator.get(options)
    stranger = make_client()
    response = await stranger.post(f"{API}/auth/passkey/login", json={"credential": credential})
    expect_error(response, 401, "mfa_challenge_expired")
    # Nothing was spent: the caller holding the challenge still logs in with it.
    own = await client.post(f"{API}/auth/passkey/login", json={"credential": credential})
    assert own.status_code == 200, own.text


def _garbage_b64(credential: dict) -> dict:
    response = {key: "!!not*base64~~" for key in credential["response"] if isinstance(key, str)}
    return {**credential, "rawId": "%%%", "response": response}


MALFORMED = [
    pytest.param(lambda _: {}, id="empty"),
    pytest.param(lambda _: {"id": 5}, id="id-number"),
    pytest.param(lambda c: {**c, "response": "nope"}, id="response-string"),
    pytest.param(lambda c: {**c, "id": "A" * 20_000}, id="huge"),
    pytest.param(_garbage_b64, id="garbage-base64"),
    pytest.param(lambda c: {**c, "id": json.loads("[" * 200 + "]" * 200)}, id="deeply-nested"),
    pytest.param(lambda c: {**c, "rawId": "é"}, id="nonascii"),
    pytest.param(
        lambda c: {
            **c,
            "response": {
                **c["response"],
                "clientDataJSON": base64.urlsafe_b64encode(
                    b'{"type":"webauthn.get","challenge":5,"origin":1}'
                )
                .rstrip(b"=")
                .decode(),
            },
        },
        id="client-data-types",
    ),
]


@pytest.mark.parametrize("mangle", MALFORMED)
async def test_malformed_credentials_are_refused_and_change_nothing(make_client, mangle):
    client, account, authenticator, _ = await passkey_user(make_client)
    before = await mfa_status(client)
    # Registration.
    options = (await client.post(f"{API}/users/me/passkeys/options")).json()["publicKey"]
    bad = mangle(soft_authenticator().create(options))
    response = await client.post(f"{API}/users/me/passkeys", json={"name": "bad", "credential": bad})
    assert (response.status_code, code_of(response)) in {(400, "invalid_passkey"), (422, "validation_error")}
    assert await mfa_status(client) == before
    await client.post(f"{API}/auth/logout")
    # Passwordless login.
    options = (await client.post(f"{API}/auth/passkey/options")).json()["publicKey"]
    bad = mangle(authenticator.get(options))
    response = await client.post(f"{API}/auth/passkey/login", json={"credential": bad})
    assert (response.status_code, code_of(response)) in {(400, "invalid_passkey"), (422, "validation_error")}
    # Second step.
    await password_step(client, account)
    options = (await client.post(f"{API}/auth/mfa/webauthn/options")).json()["publicKey"]
    bad = mangle(authenticator.get(options))
    response = await client.post(f"{API}/auth/mfa/verify", json={"method": "webauthn", "credential": bad})
    assert (response.status_code, code_of(response)) in {(400, "invalid_passkey"), (422, "validation_error")}
    assert (await client.get(f"{API}/users/me")).status_code == 401
    # The passkey still works: no counter or challenge state was corrupted.
    assert (await passkey_login(client, authenticator)).status_code == 200
    # Re-authentication.
    options = (await client.post(f"{API}/auth/reauthenticate/webauthn/options")).json()["publicKey"]
    bad = mangle(authenticator.get(options))
    response = await client.post(f"{API}/auth/reauthenticate", json={"method": "webauthn", "credential": bad})
    assert (response.status_code, code_of(response)) in {(400, "invalid_passkey"), (422, "validation_error")}
    assert (await mfa_status(client))["passkeys"][0]["id"] == before["passkeys"][0]["id"]


async def test_another_users_passkey_cannot_be_deleted(make_client):
    alice, _, _, created = await passkey_user(make_client)
    mallory = make_client()
    await login(mallory, await register(mallory))
    response = await mallory.delete(f"{API}/users/me/passkeys/{created['id']}")
    expect_error(response, 404, "not_found")
    assert [p["id"] for p in (await mfa_status(alice))["passkeys"]] == [created["id"]]


async def test_removing_the_last_passkey_drops_the_codes_and_the_second_step(make_client):
    client, account, authenticator, created = await passkey_user(make_client)
    assert (await mfa_status(client))["recovery_codes_left"] == 10
    response = await client.delete(f"{API}/users/me/passkeys/{created['id']}")
    assert response.status_code == 204, response.text
    assert await mfa_status(client) == {"totp": False, "passkeys": [], "recovery_codes_left": 0}
    await client.post(f"{API}/auth/logout")
    login_response = await login(client, account)
    assert "mfa_required" not in login_response.json()
    assert (await client.get(f"{API}/users/me")).status_code == 200
    await client.post(f"{API}/auth/logout")
    gone = await passkey_login(client, authenticator)
    expect_error(gone, 401, "invalid_credentials")


async def test_reauthentication_with_a_passkey_makes_a_stale_session_fresh(make_client, stale_client):
    client, _, authenticator, _ = await passkey_user(make_client)
    stale = stale_client(cookies=client.cookies)  # the same session, on an app where it goes stale fast
    await asyncio.sleep(1.5)
    refused = await stale.post(f"{API}/users/me/passkeys/options")
    expect_error(refused, 403, "reauthentication_required")
    assert "webauthn" in refused.json()["error"]["details"]["methods"]

    options = await stale.post(f"{API}/auth/reauthenticate/webauthn/options")
    assert options.status_code == 200, options.text
    credential = authenticator.get(options.json()["publicKey"])
    response = await stale.post(
        f"{API}/auth/reauthenticate", json={"method": "webauthn", "credential": credential}
    )
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"auth_time", "expires_in"}
    assert (await stale.post(f"{API}/users/me/passkeys/options")).status_code == 200
    # The same assertion cannot re-authenticate again: the session goes stale and stays so.
    await asyncio.sleep(1.5)
    again = await stale.post(
        f"{API}/auth/reauthenticate", json={"method": "webauthn", "credential": credential}
    )
    expect_error(again, 400, "invalid_passkey")
    assert (await stale.post(f"{API}/users/me/passkeys/options")).status_code == 403


async def test_reauthentication_options_need_a_passkey(user):
    client, _ = user
    response = await client.post(f"{API}/auth/reauthenticate/webauthn/options")
    assert response.status_code == 409, response.text


async def test_turning_totp_off_keeps_the_recovery_codes_while_a_passkey_is_left(make_client):
    client = make_client()
    await login(client, await register(client))
    codes = (await add_passkey(client, soft_authenticator())).json()["recovery_codes"]
    assert len(codes) == 10
    app, from_totp = await enable_totp(client)
    assert from_totp == []  # the user had codes already
    assert (await client.delete(f"{API}/users/me/mfa/totp")).status_code == 204
    status = (await client.get(f"{API}/users/me/mfa")).json()
    assert (status["totp"], status["recovery_codes_left"], len(status["passkeys"])) == (False, 10, 1)
