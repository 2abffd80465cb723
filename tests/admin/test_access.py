"""API.md section 5: every admin route is for superusers only, and documented as such."""

import pytest

from tests.admin.helpers import ADMIN_USERS, assert_error
from tests.fixtures.client import login, register

# (method, path template, body): every admin route.
ROUTES = [
    ("GET", ADMIN_USERS, None),
    ("GET", ADMIN_USERS + "/{id}", None),
    ("PATCH", ADMIN_USERS + "/{id}", {"is_active": False}),
    ("DELETE", ADMIN_USERS + "/{id}", None),
    ("DELETE", ADMIN_USERS + "/{id}/sessions", None),
]
UNSAFE_ROUTES = [route for route in ROUTES if route[0] != "GET"]


def _ids(route: tuple) -> str:
    return f"{route[0]} {route[1].removeprefix(ADMIN_USERS) or '/'}"


async def _call(client, route, user_id: int, **kwargs):
    method, path, body = route
    return await client.request(method, path.format(id=user_id), json=body, **kwargs)


@pytest.mark.parametrize("route", ROUTES, ids=_ids)
async def test_anonymous_callers_get_401(client, user, admin, route):
    _, victim = user
    assert_error(await _call(client, route, victim.id), 401, "not_authenticated")
    admin_client, _ = admin
    assert (await admin_client.get(f"{ADMIN_USERS}/{victim.id}")).json()["is_active"] is True


@pytest.mark.parametrize("route", ROUTES, ids=_ids)
async def test_non_admins_get_403_forbidden(user, make_client, admin, route):
    caller = make_client()
    await login(caller, await register(caller))
    _, victim = user
    assert_error(await _call(caller, route, victim.id), 403, "forbidden")
    # Not even about themselves.
    me = (await caller.get("/api/v1/users/me")).json()["id"]
    assert_error(await _call(caller, route, me), 403, "forbidden")
    admin_client, _ = admin
    assert (await admin_client.get(f"{ADMIN_USERS}/{victim.id}")).json()["is_active"] is True


@pytest.mark.parametrize("route", UNSAFE_ROUTES, ids=_ids)
async def test_unsafe_admin_routes_need_the_csrf_token(admin, user, route):
    admin_client, _ = admin
    user_client, victim = user
    assert_error(await _call(admin_client, route, victim.id, csrf=False), 403, "csrf_failed")
    assert_error(
        await _call(admin_client, route, victim.id, headers={"X-CSRF-Token": "forged"}), 403, "csrf_failed"
    )
    assert (await user_client.get("/api/v1/users/me")).status_code == 200  # untouched


async def test_openapi_documents_the_admin_routes_and_their_errors(client):
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    expected = {
        ("/api/v1/admin/users", "get"): {"401", "403", "422"},
        ("/api/v1/admin/users/{user_id}", "get"): {"401", "403", "404", "422"},
        ("/api/v1/admin/users/{user_id}", "patch"): {"400", "401", "403", "404", "409", "422"},
        ("/api/v1/admin/users/{user_id}", "delete"): {"401", "403", "404", "409", "422"},
        ("/api/v1/admin/users/{user_id}/sessions", "delete"): {"401", "403", "404", "422"},
    }
    for (path, method), statuses in expected.items():
        operation = paths[path][method]
        assert operation["summary"], (path, method)
        assert statuses <= set(operation["responses"]), (path, method, operation["responses"])
        for status in statuses:
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema["$ref"].endswith("/ErrorResponse"), (path, method, status)
        if method != "get":
            assert "csrf_failed" in operation["responses"]["403"]["description"]
    patch = paths["/api/v1/admin/users/{user_id}"]["patch"]["responses"]
    assert "last_superuser" in patch["409"]["description"]
    assert "user_already_exists" in patch["409"]["description"]
