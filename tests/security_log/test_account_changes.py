"""The events that come with a change to the account (API.md sections 9 and 10): written in
the change's own transaction. And the second factors' session events."""

from tests.auth.test_recovery import NEW_PASSWORD, Mailbox, reset, reset_token
from tests.fixtures.client import API, login, register
from tests.mfa.helpers import add_passkey, login_with_totp, password_step, soft_authenticator, totp_user
from tests.security_log.helpers import wait_for_events


async def test_a_password_reset_is_logged(mail_client, inbox):
    client, make_client = mail_client(), mail_client
    account = await register(client)
    token = await reset_token(client, Mailbox(inbox), account)
    assert (await reset(client, token)).status_code == 200
    account.password = NEW_PASSWORD
    reader = make_client()
    await login(reader, account)
    page = await wait_for_events(reader, ["login", "password_reset"])
    assert page["items"][1]["details"] == {"sessions_revoked": 0, "tokens_revoked": 0}


async def test_totp_its_logins_recovery_codes_and_reauthentication_are_logged(make_client):
    client, account, app, codes = await totp_user(make_client)
    mfa_login = make_client()
    await login_with_totp(mfa_login, account, app)
    reauth = await mfa_login.post(f"{API}/auth/reauthenticate", json={"method": "totp", "code": app.code()})
    assert reauth.status_code == 200, reauth.text
    assert (await mfa_login.post(f"{API}/users/me/mfa/recovery-codes")).status_code == 200
    expected = ["recovery_codes_regenerated", "reauthenticated", "login", "mfa_enabled", "login"]
    page = await wait_for_events(mfa_login, expected)
    assert page["items"][1]["details"] == {
        "session_id": page["items"][2]["details"]["session_id"],
        "method": "otp",
    }
    assert page["items"][2]["details"]["amr"] == ["pwd", "otp"]
    assert page["items"][3]["details"] == {"method": "totp"}

    fresh_codes = (await client.post(f"{API}/users/me/mfa/recovery-codes")).json()["recovery_codes"]
    assert fresh_codes != codes
    by_code = make_client()
    await password_step(by_code, account)
    used = await by_code.post(
        f"{API}/auth/mfa/verify", json={"method": "recovery_code", "code": fresh_codes[0]}
    )
    assert used.status_code == 200, used.text
    assert (await by_code.delete(f"{API}/users/me/mfa/totp")).status_code == 204
    page = await wait_for_events(
        by_code, ["mfa_disabled", "login", "recovery_code_used", "recovery_codes_regenerated", *expected]
    )
    assert page["items"][2]["details"] == {"codes_left": 9}


async def test_passkeys_added_and_removed_are_logged(user):
    client, _account = user
    created = (await add_passkey(client, soft_authenticator(), name="work laptop")).json()
    assert (await client.delete(f"{API}/users/me/passkeys/{created['id']}")).status_code == 204
    page = await wait_for_events(client, ["passkey_removed", "passkey_added", "login"])
    for item in page["items"][:2]:
        assert item["details"] == {"passkey_id": created["id"], "name": "work laptop"}
