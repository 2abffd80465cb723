"""TOTP and recovery codes (API.md section 9): enrolment, the two-step login, the rules on
codes (a window of one step, each step once, five wrong codes end the step), and what
the session records (aal, amr, auth_time)."""

import asyncio
import time

import pyotp
import pytest

from tests.auth.helpers import attributes, set_cookies
from tests.fixtures.client import API, login, register
from tests.mfa.helpers import Totp, enable_totp, login_with_totp, password_step, totp_user

MFA_COOKIE = "__Secure-mfa"


async def _sessions(client):
    response = await client.get(f"{API}/users/me/sessions")
    assert response.status_code == 200, response.text
    return response.json()


async def test_enrolment_shows_the_secret_once_and_confirmation_turns_it_on(user):
    client, account = user
    response = await client.post(f"{API}/users/me/mfa/totp")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={body['secret']}" in body["otpauth_uri"]
    assert account.username in body["otpauth_uri"]
    assert body["qr_svg"].startswith("<svg")
    # Not on until confirmed.
    assert (await client.get(f"{API}/users/me/mfa")).json()["totp"] is False
    app = Totp(body["secret"])
    confirmed = await client.post(f"{API}/users/me/mfa/totp/confirm", json={"code": app.code()})
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    status = (await client.get(f"{API}/users/me/mfa")).json()
    assert status == {"totp": True, "passkeys": [], "recovery_codes_left": 10}
    # The secret is never shown again, and a second enrolment is refused.
    again = await client.post(f"{API}/users/me/mfa/totp")
    assert again.status_code == 409
    assert body["secret"] not in again.text
    # This session counts as two-factor now.
    (current,) = [s for s in await _sessions(client) if s["current"]]
    assert current["aal"] == 2
    assert "otp" in current["amr"]


async def test_a_new_enrolment_replaces_an_unconfirmed_secret(user):
    client, _ = user
    first = (await client.post(f"{API}/users/me/mfa/totp")).json()["secret"]
    second = (await client.post(f"{API}/users/me/mfa/totp")).json()["secret"]
    assert first != second
    stale = await client.post(f"{API}/users/me/mfa/totp/confirm", json={"code": Totp(first).code()})
    assert stale.status_code == 401
    assert stale.json()["error"]["code"] == "invalid_mfa_code"
    ok = await client.post(f"{API}/users/me/mfa/totp/confirm", json={"code": Totp(second).code()})
    assert ok.status_code == 200


async def test_confirming_without_enrolment_is_409(user):
    client, _ = user
    response = await client.post(f"{API}/users/me/mfa/totp/confirm", json={"code": "123456"})
    assert response.status_code == 409


async def test_concurrent_confirmations_of_one_enrolment_one_wins(user):
    client, _ = user
    secret = (await client.post(f"{API}/users/me/mfa/totp")).json()["secret"]
    app = Totp(secret)
    codes = [app.code(), app.code()]
    responses = await asyncio.gather(
        *(client.post(f"{API}/users/me/mfa/totp/confirm", json={"code": code}) for code in codes)
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] == 200, [r.text for r in responses]
    assert statuses[1] in (409, 401), [r.text for r in responses]
    assert (await client.get(f"{API}/users/me/mfa")).json()["recovery_codes_left"] == 10


async def test_enabling_totp_ends_every_other_session(make_client):
    laptop, phone = make_client(), make_client()
    account = await register(laptop)
    await login(laptop, account)
    await login(phone, account)
    await enable_totp(laptop)
    assert (await phone.get(f"{API}/users/me")).status_code == 401
    assert (await laptop.get(f"{API}/users/me")).status_code == 200


async def test_two_step_login_sets_only_the_challenge_cookie_then_a_session(make_client):
    client, account, app, _ = await totp_user(make_client)
    fresh = make_client()
    step = await password_step(fresh, account)
    assert step.json() == {"mfa_required": True, "methods": ["totp", "recovery_code"], "expires_in": 300}
    cookies = set_cookies(step)
    assert set(cookies) == {MFA_COOKIE}
    flags = attributes(cookies[MFA_COOKIE])
    assert flags["path"] == "/api/v1/auth"
    assert flags["samesite"] == "Strict"
    assert flags["max-age"] == "300"
    assert "httponly" in flags
    assert "secure" in flags
    assert step.headers["cache-control"] == "no-store"
    assert (await fresh.get(f"{API}/users/me")).status_code == 401  # no session yet
    done = await fresh.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": app.code()})
    assert done.status_code == 200, done.text
    assert set(done.json()) == {"user", "csrf_token", "expires_in"}
    assert done.json()["user"]["id"] == account.id
    assert {"__Host-session", "__Secure-refresh", "__Host-csrftoken"} <= set(set_cookies(done))
    assert attributes(set_cookies(done)[MFA_COOKIE])["max-age"] == "0"  # the challenge cookie cleared
    (current,) = [s for s in await _sessions(fresh) if s["current"]]
    assert (current["aal"], current["amr"]) == (2, ["pwd", "otp"])


async def test_a_user_without_a_second_factor_logs_in_as_before(user):
    client, account = user
    response = await login(client, account)
    assert set(response.json()) == {"user", "csrf_token", "expires_in"}
    (current,) = [s for s in await _sessions(client) if s["current"]]
    assert (current["aal"], current["amr"]) == (1, ["pwd"])


async def test_each_time_step_is_accepted_once(make_client):
    client, account, app, _ = await totp_user(make_client)
    code = app.code()
    first = make_client()
    await password_step(first, account)
    assert (
        await first.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": code})
    ).status_code == 200
    second = make_client()
    await password_step(second, account)
    replay = await second.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": code})
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "invalid_mfa_code"


async def test_codes_outside_the_window_are_refused(make_client):
    client, account, app, _ = await totp_user(make_client)
    await password_step(client, account)
    totp = pyotp.TOTP(app.secret)
    far = totp.at(time.time() + 120)
    response = await client.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": far})
    assert response.status_code == 401
    ok = await client.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": app.code()})
    assert ok.status_code == 200


async def test_the_fifth_wrong_code_ends_the_challenge(make_client):
    client, account, app, _ = await totp_user(make_client)
    await password_step(client, account)
    for _ in range(4):
        wrong = await client.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": app.wrong_code()})
        assert wrong.json()["error"]["code"] == "invalid_mfa_code"
    fifth = await client.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": app.wrong_code()})
    assert fifth.status_code == 401
    assert fifth.json()["error"]["code"] == "invalid_mfa_code"
    # Even the right code is too late now: log in again.
    right = await client.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": app.code()})
    assert right.status_code == 401
    assert right.json()["error"]["code"] == "mfa_challenge_expired"
    assert attributes(set_cookies(right)[MFA_COOKIE])["max-age"] == "0"


async def test_verify_without_a_challenge_is_refused(client):
    response = await client.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": "123456"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "mfa_challenge_expired"


@pytest.mark.parametrize(
    "body",
    [
        {"method": "totp"},
        {"method": "sms", "code": "123456"},
        {"method": "totp", "code": "1" * 65},
        {"method": "totp", "code": "12\x0034"},
        {"method": "webauthn", "code": "123456"},
        {"method": "totp", "code": "123456", "credential": {}},
    ],
)
async def test_malformed_second_steps_are_422_and_keep_the_challenge(make_client, body):
    client, account, app, _ = await totp_user(make_client)
    await password_step(client, account)
    response = await client.post(f"{API}/auth/mfa/verify", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    ok = await client.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": app.code()})
    assert ok.status_code == 200


async def test_one_users_challenge_cannot_finish_with_another_users_code(make_client):
    alice, bob = make_client(), make_client()
    a = await register(alice)
    b = await register(bob)
    await login(alice, a)
    await login(bob, b)
    await enable_totp(alice)
    bob_app, _ = await enable_totp(bob)
    await password_step(alice, a)
    response = await alice.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": bob_app.code()})
    assert response.status_code == 401


async def test_recovery_codes_work_once_without_case_spaces_or_hyphens(make_client):
    client, account, _, codes = await totp_user(make_client)
    messy = " " + codes[0].lower().replace("-", " - ") + " "
    first = make_client()
    await password_step(first, account)
    used = await first.post(f"{API}/auth/mfa/verify", json={"method": "recovery_code", "code": messy})
    assert used.status_code == 200, used.text
    (current,) = [s for s in await _sessions(first) if s["current"]]
    assert (current["aal"], current["amr"]) == (2, ["pwd", "recovery_code"])
    assert (await first.get(f"{API}/users/me/mfa")).json()["recovery_codes_left"] == 9
    again = make_client()
    await password_step(again, account)
    replay = await again.post(f"{API}/auth/mfa/verify", json={"method": "recovery_code", "code": codes[0]})
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "invalid_mfa_code"


async def test_regenerated_recovery_codes_replace_the_old_ones(make_client):
    client, account, _, old = await totp_user(make_client)
    response = await client.post(f"{API}/users/me/mfa/recovery-codes")
    assert response.status_code == 200
    new = response.json()["recovery_codes"]
    assert len(new) == 10
    assert not set(new) & set(old)
    other = make_client()
    await password_step(other, account)
    stale = await other.post(f"{API}/auth/mfa/verify", json={"method": "recovery_code", "code": old[1]})
    assert stale.status_code == 401
    fresh = await other.post(f"{API}/auth/mfa/verify", json={"method": "recovery_code", "code": new[1]})
    assert fresh.status_code == 200


async def test_recovery_codes_need_a_second_factor(user):
    client, _ = user
    assert (await client.post(f"{API}/users/me/mfa/recovery-codes")).status_code == 409


async def test_disabling_totp_removes_the_second_step_and_the_codes(make_client):
    client, account, app, codes = await totp_user(make_client)
    response = await client.delete(f"{API}/users/me/mfa/totp")
    assert response.status_code == 204
    assert (await client.get(f"{API}/users/me/mfa")).json() == {
        "totp": False,
        "passkeys": [],
        "recovery_codes_left": 0,
    }
    assert (await client.delete(f"{API}/users/me/mfa/totp")).status_code == 404
    other = make_client()
    plain = await login(other, account)
    assert "user" in plain.json()  # no second step any more


async def test_a_disabled_secret_no_longer_verifies(make_client):
    client, account, app, _ = await totp_user(make_client)
    pending = make_client()
    await password_step(pending, account)  # a challenge opened while TOTP was on
    assert (await client.delete(f"{API}/users/me/mfa/totp")).status_code == 204
    response = await pending.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": app.code()})
    assert response.status_code == 401


async def test_a_refresh_keeps_aal_and_amr(make_client):
    client, account, app, _ = await totp_user(make_client)
    second = make_client()
    await login_with_totp(second, account, app)
    refreshed = await second.post(f"{API}/auth/refresh")
    assert refreshed.status_code == 200
    (current,) = [s for s in await _sessions(second) if s["current"]]
    assert (current["aal"], current["amr"]) == (2, ["pwd", "otp"])


async def test_a_password_reset_leaves_the_second_factor(mail_client, inbox):
    client = mail_client()
    account = await register(client)
    await login(client, account)
    await enable_totp(client)
    assert (
        await client.post(f"{API}/auth/forgot-password", json={"email": account.email})
    ).status_code == 202
    mail = await inbox.wait_for(account.email, subject="Reset your password")
    token = mail.get_content().split("Use this token:")[1].split()[0]
    new_password = "An0ther-long-passphrase!"
    reset = await client.post(f"{API}/auth/reset-password", json={"token": token, "password": new_password})
    assert reset.status_code == 200, reset.text
    account.password = new_password
    step = await password_step(mail_client(), account)
    assert "totp" in step.json()["methods"]


async def test_enabling_and_using_factors_mails_notices(mail_client, inbox):
    client, account, app, codes = await totp_user(mail_client)
    enabled = await inbox.wait_for(account.email, event="mfa_enabled")
    assert enabled["From"] == "security@example.com"
    assert app.secret not in enabled.get_content()
    other = mail_client()
    await password_step(other, account)
    await other.post(f"{API}/auth/mfa/verify", json={"method": "recovery_code", "code": codes[0]})
    await inbox.wait_for(account.email, event="recovery_code_used")
    assert (await client.post(f"{API}/users/me/mfa/recovery-codes")).status_code == 200
    regenerated = await inbox.wait_for(account.email, event="recovery_codes_regenerated")
    assert not any(code in regenerated.get_content() for code in codes)
    assert (await client.delete(f"{API}/users/me/mfa/totp")).status_code == 204
    await inbox.wait_for(account.email, event="mfa_disabled")
