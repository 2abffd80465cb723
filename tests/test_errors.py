"""API.md section 1 (the error envelope, X-Request-ID) and the baseline headers of section 2."""

import re
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from app.auth.cookies import COOKIES
from app.config import Settings
from app.main import create_app
from app.state import state_of
from tests.conftest import client_factory, serving
from tests.fixtures.client import API, ApiClient, login, register, unique

SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
SECRET = "Zq9-distinctive-Secret-7f3a1c"
BOOM_MESSAGE = "boom-private-detail-4c1e"


async def boom() -> dict[str, str]:
    raise RuntimeError(BOOM_MESSAGE)


@pytest.fixture(scope="module")
async def boom_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """An app of our own with a route that raises an unhandled exception."""
    app = create_app(settings)
    app.add_api_route("/boom", boom)
    async with serving(app) as started:
        yield started


@pytest.fixture
async def boom_client(boom_app: FastAPI) -> AsyncIterator[ApiClient]:
    async with client_factory(boom_app)() as client:
        yield client


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return body["error"]


# --- 404 / 405 ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/no-such-route", f"{API}/no-such-route", f"{API}/users/1/nothing-here"])
async def test_unknown_route_is_404_not_found_envelope(client, path):
    error = assert_envelope(await client.get(path), 404, "not_found")
    assert error["details"] is None


async def test_wrong_method_is_405_method_not_allowed_envelope(client):
    response = await client.put("/healthz")
    error = assert_envelope(response, 405, "method_not_allowed")
    assert error["details"] is None
    assert "GET" in response.headers["allow"]


async def test_wrong_method_under_api_is_405_even_with_a_valid_csrf_token(client):
    response = await client.delete(f"{API}/auth/csrf")
    assert_envelope(response, 405, "method_not_allowed")


# --- 422 -----------------------------------------------------------------------------


def assert_validation_details(error: dict) -> list[dict]:
    details = error["details"]
    assert isinstance(details, list)
    assert details
    for item in details:
        assert set(item) == {"loc", "msg", "type"}
        assert isinstance(item["loc"], list)
        assert isinstance(item["msg"], str)
        assert isinstance(item["type"], str)
    return details


async def test_missing_field_is_422_with_loc_msg_type_only(client):
    response = await client.post(f"{API}/auth/register", json={"username": unique(), "password": SECRET})
    error = assert_envelope(response, 422, "validation_error")
    details = assert_validation_details(error)
    assert {"loc": ["body", "email"], "type": "missing"}.items() <= details[0].items()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param(
            "/auth/register", {"username": "someone", "password": SECRET}, id="register-missing-email"
        ),
        pytest.param(
            "/auth/register", {"email": 12345, "username": "x", "password": SECRET}, id="register-email-int"
        ),
        pytest.param(
            "/auth/register",
            {"email": "a@example.com", "username": "someone", "password": [SECRET]},
            id="register-password-list",
        ),
        pytest.param(
            "/auth/register",
            {"email": "a@example.com", "username": "someone", "password": {"p": SECRET}},
            id="register-password-object",
        ),
        pytest.param(
            "/auth/register",
            {"email": "a@example.com", "username": "someone", "password": SECRET * 200},
            id="register-password-too-long",
        ),
        pytest.param(
            "/auth/register",
            {"email": "a@example.com", "username": "someone", "password": "x" * 12, "nickname": SECRET},
            id="register-unknown-field",
        ),
        pytest.param(
            "/auth/register",
            {"email": SECRET, "username": "someone", "password": SECRET},
            id="register-invalid-email",
        ),
        pytest.param("/auth/login", {"password": SECRET}, id="login-missing-username"),
        pytest.param(
            "/auth/login", {"username": "someone", "password": 42, "x": SECRET}, id="login-wrong-type"
        ),
        pytest.param("/auth/register", [SECRET], id="body-is-a-list"),
    ],
)
async def test_validation_error_never_echoes_the_input(client, path, body):
    response = await client.post(f"{API}{path}", json=body)
    error = assert_envelope(response, 422, "validation_error")
    assert_validation_details(error)
    assert SECRET not in response.text
    assert SECRET.lower() not in response.text.lower()


@pytest.mark.parametrize(
    "raw",
    [b'{"email": ', b"not json at all", f'{{"password": "{SECRET}", '.encode(), b"", b"{}}"],
    ids=["truncated", "text", "truncated-with-password", "empty", "trailing-junk"],
)
async def test_malformed_json_is_422_validation_error_envelope(client, raw):
    response = await client.post(
        f"{API}/auth/register", content=raw, headers={"Content-Type": "application/json"}
    )
    error = assert_envelope(response, 422, "validation_error")
    assert_validation_details(error)
    assert SECRET not in response.text


async def test_body_that_is_not_utf8_gets_a_client_error_envelope(client):
    # FastAPI answers 400 (not 422) when the body cannot even be decoded: still our envelope.
    response = await client.post(
        f"{API}/auth/register", content=b"\xff\xfe\x00", headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422)
    assert_envelope(
        response, response.status_code, {400: "bad_request", 422: "validation_error"}[response.status_code]
    )


async def test_invalid_path_parameter_is_422_validation_error(client):
    error = assert_envelope(await client.get(f"{API}/users/not-a-number"), 422, "validation_error")
    details = assert_validation_details(error)
    assert details[0]["loc"] == ["path", "user_id"]
    assert "not-a-number" not in str(details)


# --- 500 -----------------------------------------------------------------------------


async def test_unhandled_exception_is_500_internal_error_with_request_id(boom_client):
    response = await boom_client.get("/boom")
    error = assert_envelope(response, 500, "internal_error")
    assert error["details"] == {"request_id": response.headers["x-request-id"]}
    assert BOOM_MESSAGE not in error["message"]
    assert "RuntimeError" not in error["message"]
    for leak in ("Traceback", "RuntimeError", BOOM_MESSAGE, 'File "', "line "):
        assert leak not in response.text
    assert response.headers["content-type"].startswith("application/json")


async def test_unhandled_exception_keeps_the_incoming_request_id(boom_client):
    response = await boom_client.get("/boom", headers={"X-Request-ID": "trace-500.abc:1"})
    error = assert_envelope(response, 500, "internal_error")
    assert response.headers["x-request-id"] == "trace-500.abc:1"
    assert error["details"] == {"request_id": "trace-500.abc:1"}


async def test_unhandled_exception_logs_the_traceback_with_the_request_id(boom_client, caplog):
    response = await boom_client.get("/boom", headers={"X-Request-ID": "logged-500-id"})
    assert response.status_code == 500
    records = [r for r in caplog.records if r.exc_info and BOOM_MESSAGE in str(r.exc_info[1])]
    assert records, "the unhandled exception should be logged for the operator"


# --- X-Request-ID ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "incoming", ["abc", "A" * 128, "req-1.2:3_x", "0f8fad5b-d9cb-469f-a165-70867728950e", "-", "..."]
)
async def test_sane_request_id_is_echoed(client, incoming):
    response = await client.get("/healthz", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        "a" * 129,
        "a b",
        "",
        " ",
        "bad/slash",
        "<script>alert(1)</script>",
        "id;drop",
        "a\tb",
        'quote"d',
        "x" * 8_000,
    ],
    ids=lambda value: value[:20] or "empty",
)
async def test_insane_request_id_is_replaced_by_a_fresh_one(client, incoming):
    response = await client.get("/healthz", headers={"X-Request-ID": incoming})
    assert response.status_code == 200
    outgoing = response.headers["x-request-id"]
    assert outgoing != incoming
    assert SANE_REQUEST_ID.fullmatch(outgoing)


async def test_non_ascii_request_id_is_replaced(client):
    response = await client.get("/healthz", headers={"X-Request-ID": "caf\u00e9".encode()})
    outgoing = response.headers["x-request-id"]
    assert SANE_REQUEST_ID.fullmatch(outgoing)
    assert not outgoing.startswith("caf")


async def test_fresh_request_ids_differ_between_requests(client):
    first = (await client.get("/healthz")).headers["x-request-id"]
    second = (await client.get("/healthz")).headers["x-request-id"]
    assert SANE_REQUEST_ID.fullmatch(first)
    assert SANE_REQUEST_ID.fullmatch(second)
    assert first != second


async def test_request_id_on_2xx_4xx_and_500(client, boom_client):
    responses = [
        await client.get("/healthz"),
        await client.get("/nowhere"),
        await client.get(f"{API}/users/me"),
        await client.post(f"{API}/auth/register", json={}),
        await boom_client.get("/boom"),
    ]
    assert [r.status_code for r in responses] == [200, 404, 401, 422, 500]
    for response in responses:
        assert SANE_REQUEST_ID.fullmatch(response.headers.get("x-request-id", ""))


async def test_csrf_rejection_carries_request_id_and_nosniff(client):
    response = await client.post(f"{API}/auth/register", json={}, csrf=False)
    assert_envelope(response, 403, "csrf_failed")
    assert SANE_REQUEST_ID.fullmatch(response.headers["x-request-id"])
    assert response.headers["x-content-type-options"] == "nosniff"


# --- nosniff and Cache-Control ----------------------------------------------------------


async def test_nosniff_on_every_kind_of_response(client, user, boom_client):
    logged_in, _ = user
    responses = [
        await client.get("/healthz"),
        await logged_in.get(f"{API}/users/me"),
        await client.get("/nowhere"),
        await client.put("/healthz"),
        await client.get(f"{API}/users/me"),
        await client.post(f"{API}/auth/register", json={}),
        await boom_client.get("/boom"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 404, 405, 401, 422, 500]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_plain_anonymous_get_is_not_marked_no_store(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("cache-control", "")


async def test_response_that_sets_a_cookie_is_no_store(client):
    response = await client.get(f"{API}/auth/csrf")
    assert response.status_code == 200
    assert response.headers.get_list("set-cookie")
    assert response.headers["cache-control"] == "no-store"


async def test_responses_to_a_logged_in_user_are_no_store(user):
    logged_in, _ = user
    for path in ("/healthz", f"{API}/users/me", "/nowhere"):
        response = await logged_in.get(path)
        assert not response.headers.get_list("set-cookie")
        assert response.headers["cache-control"] == "no-store", path


@pytest.mark.parametrize("kind", ["session", "refresh"])
async def test_request_carrying_a_credential_cookie_is_no_store_even_if_invalid(app, make_client, kind):
    name = getattr(state_of(app)[COOKIES], kind)
    client = make_client()
    for path in ("/healthz", f"{API}/users/me"):
        response = await client.get(path, headers={"Cookie": f"{name}=not-a-real-token"})
        assert response.headers["cache-control"] == "no-store", path


async def test_login_response_is_no_store(make_client):
    client = make_client()
    account = await register(client)
    response = await login(client, account)
    assert response.headers["cache-control"] == "no-store"
