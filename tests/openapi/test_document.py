"""The OpenAPI document itself (app/api/openapi.py): the CSRF and session schemes, every error in
the envelope, and the docs switched by ENVIRONMENT and DOCS_ENABLED (API.md sections 3 and 8).
What the live server answers against this document is tests/openapi/test_schemathesis.py."""

import re
from typing import Any

import pytest
from fastapi import FastAPI

from app.auth.cookies import COOKIES
from app.main import create_app
from app.state import state_of
from tests.conftest import client_factory, make_settings, serving
from tests.fixtures.client import API

UNSAFE = {"post", "put", "patch", "delete"}
ENVELOPE_REF = "#/components/schemas/ErrorResponse"
DOC_PATHS = ("/openapi.json", "/docs", "/redoc")
# Neither reaches PostgreSQL nor Redis: the only operations that cannot answer 503.
NO_BACKING_SERVICE = {("get", "/healthz"), ("get", f"{API}/auth/csrf")}
RATE_LIMITED = {
    f"{API}/auth/{name}"
    for name in ("login", "register", "forgot-password", "reset-password", "request-verify-token", "verify")
}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def codes(response: dict[str, Any]) -> set[str]:
    return set(re.findall(r"`([a-z_]+)`", response.get("description", "")))


@pytest.fixture
async def document(client) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_the_document_is_built_once(app: FastAPI):
    assert app.openapi() is app.openapi()


async def test_the_security_schemes_name_the_csrf_header_and_the_apps_cookies(app: FastAPI, document):
    schemes = document["components"]["securitySchemes"]
    cookies = state_of(app)[COOKIES]
    expected = {
        "csrfToken": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
        "csrfCookie": {"type": "apiKey", "in": "cookie", "name": cookies.csrf},
        "sessionCookie": {"type": "apiKey", "in": "cookie", "name": cookies.session},
    }
    for name, fields in expected.items():
        assert {key: schemes[name][key] for key in fields} == fields, name
        assert schemes[name]["description"]  # what /docs shows in "Authorize"


async def test_every_unsafe_operation_requires_the_csrf_token_and_its_cookie(document):
    unsafe = [(method, path, op) for method, path, op in operations(document) if method in UNSAFE]
    assert len(unsafe) >= 15
    for method, path, operation in unsafe:
        requirements = operation.get("security")
        assert requirements, (method, path)
        # Every alternative but a bearer token's (no cookie is ambient with one): no way
        # through without the token.
        for requirement in cookie_requirements(requirements):
            assert {"csrfToken", "csrfCookie"} <= set(requirement), (method, path, requirement)


async def test_safe_operations_never_require_the_csrf_token(document):
    for method, path, operation in operations(document):
        if method not in UNSAFE:
            for requirement in operation.get("security", []):
                assert "csrfToken" not in requirement, (method, path)


@pytest.mark.parametrize(
    ("method", "path", "required"),
    [
        ("get", f"{API}/users/me", True),
        ("patch", f"{API}/users/me", True),
        ("post", f"{API}/items", True),
        ("delete", f"{API}/items/{{item_id}}", True),
        ("get", f"{API}/admin/users", True),
        ("post", f"{API}/auth/logout", True),
        ("post", f"{API}/auth/logout-all", True),
        ("get", f"{API}/items", False),
        ("get", f"{API}/users/{{user_id}}", False),
        # Login reads it too: a CSRF token is bound to the session cookie the caller holds.
        ("post", f"{API}/auth/login", False),
    ],
)
async def test_the_session_cookie_is_required_where_a_session_is_needed_and_optional_where_read(
    document, method, path, required
):
    requirements = cookie_requirements(document["paths"][path][method]["security"])
    with_session = [requirement for requirement in requirements if "sessionCookie" in requirement]
    assert with_session, requirements
    assert (len(with_session) == len(requirements)) is required, requirements


async def test_every_operation_answering_not_authenticated_requires_the_session_cookie(document):
    for method, path, operation in operations(document):
        if "not_authenticated" in codes(operation["responses"].get("401", {})):
            for requirement in cookie_requirements(operation["security"]):
                assert "sessionCookie" in requirement, (method, path)


def cookie_requirements(requirements: list[dict]) -> list[dict]:
    return [requirement for requirement in requirements if "bearerToken" not in requirement]


# API.md section 11: the operations a personal access token reaches, by scope.
BEARER_SCOPES = {
    ("get", f"{API}/users/me"): ["profile:read"],
    ("get", f"{API}/items"): ["items:read"],
    ("get", f"{API}/items/{{item_id}}"): ["items:read"],
    ("post", f"{API}/items"): ["items:write"],
    ("put", f"{API}/items/{{item_id}}"): ["items:write"],
    ("delete", f"{API}/items/{{item_id}}"): ["items:write"],
}


async def test_a_bearer_token_is_documented_exactly_where_a_scope_lets_one_in(document):
    assert document["components"]["securitySchemes"]["bearerToken"]["type"] == "http"
    assert document["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"
    found = {}
    for method, path, operation in operations(document):
        for requirement in operation.get("security", []):
            if "bearerToken" in requirement:
                assert set(requirement) == {"bearerToken"}, (method, path)  # no CSRF with it
                found[(method, path)] = requirement["bearerToken"]
    assert found == BEARER_SCOPES


async def test_every_authenticating_operation_documents_what_a_bearer_header_can_get(document):
    for method, path, operation in operations(document):
        if (method, path) == ("post", f"{API}/auth/logout"):
            continue  # reads its cookie by hand: nothing there looks at a bearer header
        if "not_authenticated" in codes(operation["responses"].get("401", {})):
            assert "invalid_token" in codes(operation["responses"]["401"]), (method, path)
            assert "insufficient_scope" in codes(operation["responses"]["403"]), (method, path)


async def test_every_error_response_is_the_envelope(document):
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if status.startswith(("2", "3")):  # a redirect (the OIDC routes) has no body
                continue
            assert response["content"] == {"application/json": {"schema": {"$ref": ENVELOPE_REF}}}, (
                method,
                path,
                status,
            )
            assert codes(response), (method, path, status)  # which codes, for a reader of /docs


async def test_fastapis_and_the_librarys_error_schemas_are_gone(document):
    schemas = document["components"]["schemas"]
    assert {"ErrorResponse", "ErrorBody"} <= set(schemas)
    assert not {"HTTPValidationError", "ValidationError", "ErrorModel"} & set(schemas)


async def test_the_common_errors_are_documented_on_every_operation(document):
    for method, path, operation in operations(document):
        responses = operation["responses"]
        where = (method, path)
        assert "internal_error" in codes(responses["500"]), where
        if (method, path) in NO_BACKING_SERVICE:
            assert "503" not in responses, where
        else:
            assert "service_unavailable" in codes(responses["503"]), where
            assert "Retry-After" in responses["503"]["headers"], where
        if operation.get("parameters") or operation.get("requestBody"):
            assert "validation_error" in codes(responses["422"]), where
        if operation.get("requestBody"):
            assert "bad_request" in codes(responses["400"]), where  # an undecodable body
        if method in UNSAFE:
            assert "csrf_failed" in codes(responses["403"]), where
        if path in RATE_LIMITED:
            assert "rate_limited" in codes(responses["429"]), where
            assert "Retry-After" in responses["429"]["headers"], where


async def test_a_routes_own_errors_are_kept_beside_the_common_ones(document):
    put_item = document["paths"][f"{API}/items/{{item_id}}"]["put"]["responses"]
    assert codes(put_item["403"]) == {"forbidden", "csrf_failed", "insufficient_scope"}
    assert codes(put_item["404"]) == {"not_found"}
    register = document["paths"][f"{API}/auth/register"]["post"]
    assert codes(register["responses"]["409"]) == {"user_already_exists"}
    assert "Register:Register" not in register["summary"]  # the library's own summary, replaced


async def test_free_text_that_reaches_the_database_refuses_nul_in_the_schema(document):
    # PostgreSQL text cannot hold U+0000: a 422, and a generated client can know it.
    schemas = document["components"]["schemas"]
    assert "pattern" in schemas["LoginRequest"]["properties"]["username"]
    params = {p["name"]: p for p in document["paths"][f"{API}/items"]["get"]["parameters"]}
    assert any("pattern" in option for option in params["q"]["schema"]["anyOf"])


async def test_partial_updates_document_that_a_field_may_be_omitted_but_not_null(document, user):
    schemas = document["components"]["schemas"]
    for name in ("UserUpdateMe", "ItemUpdate", "AdminUserUpdate"):
        for field, schema in schemas[name]["properties"].items():
            assert "null" not in str(schema.get("anyOf", "")), (name, field)
            assert schema.get("type") != "null", (name, field)
            assert "default" not in schema, (name, field)
    client, _ = user
    response = await client.patch(f"{API}/users/me", json={"username": None})
    assert response.status_code == 422  # as the schema now says


async def test_a_nul_character_is_a_validation_error_not_a_server_error(client):
    items = await client.get(f"{API}/items", params={"q": "a\x00b"})
    assert items.status_code == 422
    assert items.json()["error"]["code"] == "validation_error"
    login = await client.post(f"{API}/auth/login", json={"username": "a\x00b", "password": "x"})
    assert login.status_code == 422
    assert login.json()["error"]["code"] == "validation_error"


async def test_a_body_that_is_not_utf8_is_the_documented_400(client):
    response = await client.post(
        f"{API}/auth/login", content=b'{"username": "\xff"}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


# --- on and off (API.md section 8) ------------------------------------------------------------------------


async def test_the_docs_pages_load_their_scripts_and_styles_from_the_app(client):
    for page, kinds in (("/docs", {"javascript", "css"}), ("/redoc", {"javascript"})):
        response = await client.get(page)
        assert response.status_code == 200, page
        # Nothing a browser would fetch from elsewhere: no CDN, no absolute URL at all.
        assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
        assert assets, page
        assert all(asset.startswith("/docs/static/") for asset in assets), (page, assets)
        assert "default-src 'self'" in response.headers["content-security-policy"], page
        served = set()
        for asset in assets:
            file = await client.get(asset)
            assert file.status_code == 200, asset
            assert len(file.content) > 1000, asset
            served |= {kind for kind in kinds if kind in file.headers["content-type"]}
        assert served == kinds, page


async def test_production_serves_no_docs_assets(database_url, redis_prefix):
    app = create_app(make_settings(database_url, redis_prefix, environment="production"))
    async with serving(app), client_factory(app)() as client:
        for asset in ("/docs/static/swagger-ui-bundle.js", "/docs/static/redoc.standalone.js"):
            assert (await client.get(asset)).status_code == 404, asset


async def test_production_serves_no_docs(database_url, redis_prefix):
    app = create_app(make_settings(database_url, redis_prefix, environment="production"))
    async with serving(app), client_factory(app)() as client:
        for path in DOC_PATHS:
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"


async def test_production_serves_the_docs_and_the_whole_document_with_docs_enabled(
    database_url, redis_prefix
):
    settings = make_settings(database_url, redis_prefix, environment="production", docs_enabled=True)
    app = create_app(settings)
    async with serving(app), client_factory(app)() as client:
        for path in DOC_PATHS:
            assert (await client.get(path)).status_code == 200, path
        document = (await client.get("/openapi.json")).json()
    # The customised document, with production's (prefixed) cookie names.
    schemes = document["components"]["securitySchemes"]
    assert schemes["sessionCookie"]["name"] == "__Host-session"
    assert schemes["csrfCookie"]["name"] == "__Host-csrftoken"
    assert document["paths"][f"{API}/auth/login"]["post"]["security"]
