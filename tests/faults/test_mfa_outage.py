"""Section 9's routes in a Redis outage: 503 in time, never a 401 that would end the
user's second step or session, never a 500; nothing spent (the TOTP step is still good
afterwards); the same steps work once Redis is back."""

import pytest

from tests.faults.helpers import all_at_once, assert_all_unavailable, eventually
from tests.fixtures.client import API
from tests.mfa.helpers import password_step, totp_user

pytestmark = pytest.mark.slow


async def test_the_second_step_and_reauthentication_fail_closed_while_redis_is_down(stack):
    signed_in, account, app, codes = await totp_user(stack.client)
    pending = stack.client()
    await password_step(pending, account)
    await pending.csrf_token()
    code = app.code()

    stack.redis.stop()

    results = await all_at_once(
        {
            "mfa/verify": pending.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": code}),
            "mfa/webauthn/options": pending.post(f"{API}/auth/mfa/webauthn/options"),
            "passkey/options": stack.client().post(f"{API}/auth/passkey/options"),
            "reauthenticate": signed_in.post(
                f"{API}/auth/reauthenticate", json={"method": "recovery_code", "code": codes[0]}
            ),
            "GET /users/me/mfa": signed_in.get(f"{API}/users/me/mfa"),
        }
    )
    assert_all_unavailable(results)
    for what, (response, _elapsed) in results.items():
        assert not response.headers.get_list("set-cookie"), what  # no cookie cleared: no step ended

    await stack.redis.restart()
    await eventually(lambda: stack.client().get("/health"), 200, "GET /health")

    # This Redis keeps nothing, so the pending step is gone; the code and the recovery code
    # the refused requests carried were not spent.
    again = stack.client()
    await password_step(again, account)
    done = await again.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": code})
    assert done.status_code == 200, done.text
    other = stack.client()
    await password_step(other, account)
    recovered = await other.post(f"{API}/auth/mfa/verify", json={"method": "recovery_code", "code": codes[0]})
    assert recovered.status_code == 200, recovered.text


@pytest.mark.parametrize("fault", ["refuse", "hang"])
async def test_a_second_step_during_a_database_outage_keeps_the_step_and_its_code(stack, fault):
    _signed_in, account, app, _codes = await totp_user(stack.client)
    pending = stack.client()
    await password_step(pending, account)
    await pending.csrf_token()
    code = app.code()

    await stack.relay.set_mode(fault)
    results = await all_at_once(
        {"mfa/verify": pending.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": code})}
    )
    assert_all_unavailable(results)
    await stack.relay.set_mode("forward")

    # The outage counted as no wrong code and spent nothing: the same step takes the same code.
    done = await eventually(
        lambda: pending.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": code}),
        200,
        "POST /auth/mfa/verify",
    )
    assert done.json()["user"]["id"] == account.id
