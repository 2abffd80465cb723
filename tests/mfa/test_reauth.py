"""Fresh sessions (API.md section 9): which operations need one, re-authentication with a
password or a second factor, a refresh that does not make a session fresh, admin routes
under ADMIN_REQUIRE_MFA, the operator's mfa-reset, and TOTP replay across two workers."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from app.main import create_app
from tests.conftest import STALE_AFTER_SECONDS, client_factory, make_settings, promote, serving
from tests.fixtures.client import API, login, register
from tests.live.conftest import deployment, workers  # noqa: F401  (two uvicorn workers)
from tests.mfa.helpers import enable_totp, login_with_totp, password_step, totp_user
from tests.ops.test_cli import Cli

SENSITIVE = f"{API}/users/me/mfa/totp"  # POST: start a TOTP enrolment


async def _stale() -> None:
    await asyncio.sleep(STALE_AFTER_SECONDS + 0.5)


def _refused(response, methods: list[str]) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "reauthentication_required"
    assert error["details"] == {"methods": methods}


async def test_a_stale_session_is_refused_then_accepted_after_reauthenticating(stale_client):
    client = stale_client()
    account = await register(client)
    await login(client, account)
    await _stale()
    _refused(await client.post(SENSITIVE), ["password"])
    wrong = await client.post(f"{API}/auth/reauthenticate", json={"password": "not-the-password"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    done = await client.post(f"{API}/auth/reauthenticate", json={"password": account.password})
    assert done.status_code == 200, done.text
    assert set(done.json()) == {"auth_time", "expires_in"}
    assert done.json()["expires_in"] == STALE_AFTER_SECONDS
    assert (await client.post(SENSITIVE)).status_code == 200


async def test_reading_needs_no_fresh_session(stale_client):
    client = stale_client()
    account = await register(client)
    await login(client, account)
    await _stale()
    assert (await client.get(f"{API}/users/me/mfa")).status_code == 200
    assert (await client.get(f"{API}/users/me")).status_code == 200


async def test_a_refresh_does_not_make_a_session_fresh(stale_client):
    client = stale_client()
    account = await register(client)
    await login(client, account)
    await _stale()
    assert (await client.post(f"{API}/auth/refresh")).status_code == 200
    _refused(await client.post(SENSITIVE), ["password"])


async def test_a_user_with_a_second_factor_reauthenticates_with_it(stale_client):
    client, account, app, _ = await totp_user(stale_client)
    await _stale()
    _refused(await client.post(f"{API}/users/me/mfa/recovery-codes"), ["totp", "recovery_code"])
    password_only = await client.post(f"{API}/auth/reauthenticate", json={"password": account.password})
    assert password_only.status_code == 400
    assert password_only.json()["error"]["code"] == "second_factor_required"
    wrong = await client.post(f"{API}/auth/reauthenticate", json={"method": "totp", "code": app.wrong_code()})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_mfa_code"
    done = await client.post(f"{API}/auth/reauthenticate", json={"method": "totp", "code": app.code()})
    assert done.status_code == 200, done.text
    assert (await client.post(f"{API}/users/me/mfa/recovery-codes")).status_code == 200


async def test_a_password_change_needs_a_fresh_session_only_with_a_second_factor(stale_client):
    plain = stale_client()
    account = await register(plain)
    await login(plain, account)
    await _stale()
    body = {"password": "A-new-long-passphrase-1", "current_password": account.password}
    assert (await plain.patch(f"{API}/users/me", json=body)).status_code == 200

    guarded = stale_client()
    other = await register(guarded)
    await login(guarded, other)
    app, _ = await enable_totp(guarded)
    await _stale()
    body = {"password": "A-new-long-passphrase-2", "current_password": other.password}
    _refused(await guarded.patch(f"{API}/users/me", json=body), ["totp", "recovery_code"])
    assert (
        await guarded.patch(f"{API}/users/me", json={"username": f"{other.username}x"})
    ).status_code == 200
    await guarded.post(f"{API}/auth/reauthenticate", json={"method": "totp", "code": app.code()})
    assert (await guarded.patch(f"{API}/users/me", json=body)).status_code == 200


async def test_admin_patch_and_delete_need_a_fresh_session(stale_app, stale_client):
    admin = stale_client()
    account = await register(admin)
    await promote(stale_app, account.id)
    await login(admin, account)
    target = await register(stale_client())
    await _stale()
    assert (await admin.get(f"{API}/admin/users/{target.id}")).status_code == 200
    _refused(await admin.patch(f"{API}/admin/users/{target.id}", json={"is_active": False}), ["password"])
    _refused(await admin.delete(f"{API}/admin/users/{target.id}/sessions"), ["password"])
    _refused(await admin.delete(f"{API}/admin/users/{target.id}"), ["password"])
    await admin.post(f"{API}/auth/reauthenticate", json={"password": account.password})
    assert (await admin.patch(f"{API}/admin/users/{target.id}", json={"is_active": False})).status_code == 200


@pytest.fixture(scope="module")
async def strict_admin_app(database_url: str, redis_prefix: str) -> AsyncIterator[FastAPI]:
    settings = make_settings(database_url, redis_prefix, admin_require_mfa=True)
    async with serving(create_app(settings)) as app:
        yield app


async def test_admin_require_mfa_refuses_admin_routes_until_a_second_factor(strict_admin_app):
    make = client_factory(strict_admin_app)
    async with make() as admin:
        account = await register(admin)
        await promote(strict_admin_app, account.id)
        await login(admin, account)  # still logs in
        refused = await admin.get(f"{API}/admin/users")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "mfa_enrollment_required"
        await enable_totp(admin)  # and can enrol
        assert (await admin.get(f"{API}/admin/users")).status_code == 200
        async with make() as plain:
            user = await register(plain)
            await login(plain, user)
            assert (await plain.get(f"{API}/admin/users")).json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("environment", "code"), [("production", "mfa_enrollment_required"), ("staging", None)]
)
async def test_admin_require_mfa_is_on_in_production_and_off_elsewhere(
    database_url, redis_prefix, environment, code
):
    settings = make_settings(database_url, redis_prefix, environment=environment)
    async with serving(create_app(settings)) as app, client_factory(app)() as admin:
        account = await register(admin)
        await promote(app, account.id)
        await login(admin, account)
        response = await admin.get(f"{API}/admin/users")
        if code is None:
            assert response.status_code == 200, response.text
        else:
            assert response.status_code == 403
            assert response.json()["error"]["code"] == code


async def test_mfa_reset_removes_every_factor_and_session(make_client, database_url, redis_prefix, tmp_path):
    client = make_client()
    account = await register(client)
    await login(client, account)
    await enable_totp(client)
    code, out, err = await Cli(database_url, redis_prefix, tmp_path)("mfa-reset", account.username)
    assert code == 0, err
    assert "removed the second factors" in out
    assert (await client.get(f"{API}/users/me")).status_code == 401  # every session ended
    again = make_client()
    response = await login(again, account)  # the password alone logs in again
    assert "user" in response.json()
    assert (await again.get(f"{API}/users/me/mfa")).json() == {
        "totp": False,
        "passkeys": [],
        "recovery_codes_left": 0,
    }
    code, _, err = await Cli(database_url, redis_prefix, tmp_path)("mfa-reset", "no-such-user")
    assert code == 1
    assert "no user" in err


async def test_a_totp_step_replayed_on_another_worker_is_refused(deployment):  # noqa: F811
    first, second = deployment.client(0), deployment.client(1)
    account = await register(first)
    await login(first, account)
    app, _ = await enable_totp(first)
    code = app.code()
    await password_step(first, account)
    await password_step(second, account)
    responses = await asyncio.gather(
        first.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": code}),
        second.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": code}),
    )
    assert sorted(r.status_code for r in responses) == [200, 401], [r.text for r in responses]
    late = deployment.client(1)
    await password_step(late, account)
    replay = await late.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": code})
    assert replay.status_code == 401


async def test_a_session_made_by_the_second_step_is_fresh(make_client):
    client, account, app, _ = await totp_user(make_client)
    other = make_client()
    await login_with_totp(other, account, app)
    assert (await other.post(f"{API}/users/me/mfa/recovery-codes")).status_code == 200
