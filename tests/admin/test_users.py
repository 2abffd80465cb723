"""API.md section 5: reading, changing and deleting any user, and ending their sessions."""

import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from app.auth.sessions import SESSION_STORE
from app.state import state_of
from tests.admin.helpers import (
    ADMIN_USERS,
    NO_SUCH_IDS,
    admin_get,
    assert_error,
    assert_user,
    second_login,
    try_login,
)
from tests.fixtures.client import API, login, register, unique

NEW_PASSWORD = "an-admin-chosen-passphrase-77"
ME = f"{API}/users/me"


async def patch(admin_client, user_id: int, **body):
    return await admin_client.patch(f"{ADMIN_USERS}/{user_id}", json=body)


# --- GET /admin/users/{id} ------------------------------------------------------------------------


async def test_admin_reads_the_full_user(admin, user):
    admin_client, _ = admin
    _, account = user
    body = await admin_get(admin_client, account.id)
    assert (body["id"], body["email"], body["username"]) == (account.id, account.email, account.username)
    assert (body["is_active"], body["is_superuser"], body["is_verified"]) == (True, False, False)
    assert body["roles"] == ["user"]


@pytest.mark.parametrize("user_id", NO_SUCH_IDS)
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"is_verified": True}),
        ("DELETE", "", None),
        ("DELETE", "/sessions", None),
    ],
)
async def test_unknown_or_out_of_range_ids_are_404(admin, user_id, method, suffix, body):
    admin_client, _ = admin
    response = await admin_client.request(method, f"{ADMIN_USERS}/{user_id}{suffix}", json=body)
    assert_error(response, 404, "not_found")


async def test_a_non_integer_id_is_422(admin):
    admin_client, _ = admin
    assert_error(await admin_client.get(f"{ADMIN_USERS}/abc"), 422, "validation_error")


# --- PATCH /admin/users/{id} ----------------------------------------------------------------------


async def test_patch_changes_username_and_email_and_a_new_email_is_unverified(admin, user, make_client):
    admin_client, _ = admin
    _, account = user
    assert (await patch(admin_client, account.id, is_verified=True)).json()["is_verified"] is True
    name = unique()
    response = await patch(admin_client, account.id, username=name, email=f"{name}@example.com")
    assert response.status_code == 200, response.text
    body = assert_user(response.json())
    assert (body["username"], body["email"], body["is_verified"]) == (name, f"{name}@example.com", False)
    assert (await try_login(make_client, name, account.password)).status_code == 200
    # Sent together, the admin's is_verified wins over the reset that a new email implies.
    other = unique()
    body = (await patch(admin_client, account.id, email=f"{other}@example.com", is_verified=True)).json()
    assert (body["email"], body["is_verified"]) == (f"{other}@example.com", True)


async def test_an_empty_patch_changes_nothing(admin, user):
    admin_client, _ = admin
    user_client, account = user
    before = await admin_get(admin_client, account.id)
    response = await patch(admin_client, account.id)
    assert response.status_code == 200
    assert response.json() == before
    assert (await user_client.get(ME)).status_code == 200


async def test_changes_that_take_no_access_away_keep_the_sessions(admin, user):
    admin_client, _ = admin
    user_client, account = user
    response = await patch(admin_client, account.id, is_verified=True, is_active=True, username=unique())
    assert response.status_code == 200, response.text
    me = await user_client.get(ME)
    assert me.status_code == 200
    assert me.json()["is_verified"] is True  # the session's user snapshot follows the commit


@pytest.mark.parametrize(
    "body",
    [
        {"hashed_password": "x"},
        {"id": 1},
        {"roles": ["user", "admin"]},
        {"email": None},
        {"is_active": None},
        {"password": None},
        {"email": "not-an-email"},
        {"username": "no spaces allowed"},
        {"is_superuser": "sometimes"},
    ],
)
async def test_unknown_fields_nulls_and_bad_values_are_422(admin, user, body):
    admin_client, _ = admin
    user_client, account = user
    error = assert_error(await patch(admin_client, account.id, **body), 422, "validation_error")
    assert "sometimes" not in str(error["details"])  # the input is never echoed
    assert (await user_client.get(ME)).status_code == 200
    assert (await admin_get(admin_client, account.id))["is_active"] is True


async def test_a_taken_username_or_email_is_409(admin, user, make_client):
    admin_client, _ = admin
    _, account = user
    other = await register(make_client())
    for body in ({"username": other.username.upper()}, {"email": other.email.upper()}):
        assert_error(await patch(admin_client, account.id, **body), 409, "user_already_exists")
    assert (await admin_get(admin_client, account.id))["username"] == account.username


async def test_a_weak_password_is_400_invalid_password(admin, user, make_client):
    admin_client, _ = admin
    user_client, account = user
    for weak in ("short", "password123", f"xx{account.username}xx"):
        assert_error(await patch(admin_client, account.id, password=weak), 400, "invalid_password")
    assert (await user_client.get(ME)).status_code == 200  # nothing changed, nothing revoked
    assert (await try_login(make_client, account.username, account.password)).status_code == 200


async def test_deactivation_ends_the_sessions_and_login_is_403_user_inactive(admin, user, make_client):
    admin_client, _ = admin
    user_client, account = user
    other_session = await second_login(make_client, account)
    response = await patch(admin_client, account.id, is_active=False)
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False
    assert_error(await user_client.get(ME), 401, "not_authenticated")
    assert_error(await other_session.get(ME), 401, "not_authenticated")
    assert (await user_client.post(f"{API}/auth/refresh")).status_code == 401
    assert_error(await try_login(make_client, account.username, account.password), 403, "user_inactive")
    # Reactivated, they log in again.
    assert (await patch(admin_client, account.id, is_active=True)).status_code == 200
    assert (await try_login(make_client, account.username, account.password)).status_code == 200


async def test_promotion_makes_an_admin_and_demotion_ends_their_sessions(admin, user):
    admin_client, _ = admin
    user_client, account = user
    promoted = await patch(admin_client, account.id, is_superuser=True)
    assert promoted.json()["roles"] == ["user", "admin"]
    # Promotion takes nothing away: the same session now reaches the admin routes.
    assert (await user_client.get(f"{ADMIN_USERS}/{account.id}")).status_code == 200

    demoted = await patch(admin_client, account.id, is_superuser=False)
    assert demoted.status_code == 200, demoted.text
    assert demoted.json()["roles"] == ["user"]
    # The session is gone at once; logged in again, the admin routes are closed.
    assert_error(await user_client.get(f"{ADMIN_USERS}/{account.id}"), 401, "not_authenticated")
    await login(user_client, account)
    assert_error(await user_client.get(ADMIN_USERS), 403, "forbidden")
    assert (await user_client.get(ME)).json()["roles"] == ["user"]


async def test_admin_password_change_ends_old_sessions_and_the_new_password_logs_in(admin, user, make_client):
    admin_client, _ = admin
    user_client, account = user
    other_session = await second_login(make_client, account)
    response = await patch(admin_client, account.id, password=NEW_PASSWORD)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {
        "id", "email", "username", "is_active", "is_verified", "is_superuser", "roles", "created_at"
    }  # fmt: skip
    assert_error(await user_client.get(ME), 401, "not_authenticated")
    assert_error(await other_session.get(ME), 401, "not_authenticated")
    assert_error(await try_login(make_client, account.username, account.password), 401, "invalid_credentials")
    assert (await try_login(make_client, account.username, NEW_PASSWORD)).status_code == 200


async def test_when_the_session_store_fails_nothing_is_changed(admin, user, app, monkeypatch):
    admin_client, _ = admin
    user_client, account = user

    async def unreachable(*_args, **_kwargs):
        raise RedisConnectionError("simulated outage")

    monkeypatch.setattr(state_of(app)[SESSION_STORE], "revoke_user", unreachable)
    response = await patch(admin_client, account.id, is_active=False, username=unique())
    assert_error(response, 503, "service_unavailable")
    assert_error(await admin_client.delete(f"{ADMIN_USERS}/{account.id}"), 503, "service_unavailable")
    monkeypatch.undo()
    body = await admin_get(admin_client, account.id)
    assert (body["is_active"], body["username"]) == (True, account.username)
    assert (await user_client.get(ME)).status_code == 200


# --- DELETE /admin/users/{id} ---------------------------------------------------------------------


async def test_delete_removes_the_user_their_items_and_their_sessions(admin, user, make_client):
    admin_client, _ = admin
    user_client, account = user
    item_ids = []
    for private in (False, True):
        created = await user_client.post(f"{API}/items", json={"title": unique("it"), "is_private": private})
        assert created.status_code == 201, created.text
        item_ids.append(created.json()["id"])

    response = await admin_client.delete(f"{ADMIN_USERS}/{account.id}")
    assert response.status_code == 204
    assert response.content == b""
    for item_id in item_ids:
        assert_error(await admin_client.get(f"{API}/items/{item_id}"), 404, "not_found")
    assert_error(await user_client.get(ME), 401, "not_authenticated")
    assert (await user_client.post(f"{API}/auth/refresh")).status_code == 401
    assert_error(await admin_client.get(f"{ADMIN_USERS}/{account.id}"), 404, "not_found")
    assert_error(await admin_client.delete(f"{ADMIN_USERS}/{account.id}"), 404, "not_found")
    assert_error(await try_login(make_client, account.username, account.password), 401, "invalid_credentials")


async def test_an_admin_may_delete_another_admin(admin, make_admin):
    admin_client, _ = admin
    other_client, other = await make_admin()
    assert (await admin_client.delete(f"{ADMIN_USERS}/{other.id}")).status_code == 204
    assert_error(await other_client.get(ADMIN_USERS), 401, "not_authenticated")


# --- DELETE /admin/users/{id}/sessions ------------------------------------------------------------


async def test_delete_sessions_ends_every_session_and_keeps_the_user(admin, user, make_client):
    admin_client, _ = admin
    user_client, account = user
    other_session = await second_login(make_client, account)
    response = await admin_client.delete(f"{ADMIN_USERS}/{account.id}/sessions")
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await user_client.get(ME), 401, "not_authenticated")
    assert_error(await other_session.get(ME), 401, "not_authenticated")
    assert (await user_client.post(f"{API}/auth/refresh")).status_code == 401
    assert (await admin_get(admin_client, account.id))["is_active"] is True
    await login(user_client, account)
    assert (await user_client.get(ME)).status_code == 200
    # A user without sessions: still 204.
    assert (await admin_client.delete(f"{ADMIN_USERS}/{account.id}/sessions")).status_code == 204
    assert (await admin_client.delete(f"{ADMIN_USERS}/{account.id}/sessions")).status_code == 204


# --- the audit log --------------------------------------------------------------------------------


def audit_records(caplog, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "app.audit" and getattr(r, "event", None) == event]


async def test_every_admin_action_is_audited_with_actor_and_target(admin, user, caplog):
    caplog.set_level(logging.INFO, logger="app.audit")
    admin_client, admin_account = admin
    _, account = user
    assert (await admin_client.get(ADMIN_USERS, params={"q": account.username})).status_code == 200
    await admin_get(admin_client, account.id)
    assert (await patch(admin_client, account.id, password=NEW_PASSWORD, is_verified=True)).status_code == 200
    assert (await admin_client.delete(f"{ADMIN_USERS}/{account.id}/sessions")).status_code == 204
    assert (await admin_client.delete(f"{ADMIN_USERS}/{account.id}")).status_code == 204
    assert_error(await admin_client.get(f"{ADMIN_USERS}/{account.id}"), 404, "not_found")

    expected = [
        ("admin.list_users", "success", None),
        ("admin.get_user", "success", account.id),
        ("admin.update_user", "success", account.id),
        ("admin.revoke_sessions", "success", account.id),
        ("admin.delete_user", "success", account.id),
    ]
    for event, outcome, target in expected:
        records = audit_records(caplog, event)
        assert records, event
        assert (records[0].outcome, records[0].actor, records[0].target) == (
            outcome,
            admin_account.id,
            target,
        )
    update = audit_records(caplog, "admin.update_user")[0]
    assert update.fields == ["is_verified", "password"]
    assert audit_records(caplog, "admin.revoke_sessions")[0].sessions_revoked == 0
    failed = audit_records(caplog, "admin.get_user")[-1]
    assert (failed.outcome, failed.code, failed.levelno) == ("failed", "not_found", logging.WARNING)
    assert NEW_PASSWORD not in caplog.text
