"""Personal access tokens (API.md section 11): created from a fresh session, shown once,
stored hashed, reaching only the routes their scopes name, revoked at once.

Real PostgreSQL and Redis; the app over ASGI; bearer requests carry no cookie."""

import asyncio
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text

from app.auth.tokens import mint
from app.db import SESSIONMAKER
from app.main import create_app
from app.state import state_of
from tests.account.helpers import events
from tests.conftest import STALE_AFTER_SECONDS, ClientFactory, serving
from tests.fixtures.client import API, Account, ApiClient, login, register

TOKEN = re.compile(r"cspat_[0-9A-Za-z]{49}")
ALL_SCOPES = ["profile:read", "items:read", "items:write"]
DEADLINE_SECONDS = 10.0


async def create_token(client: ApiClient, *, scopes=ALL_SCOPES, name: str = "script", **extra) -> dict:
    response = await client.post(f"{API}/users/me/tokens", json={"name": name, "scopes": scopes, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def bearer(app: FastAPI, token: str) -> httpx.AsyncClient:
    """A script: no cookie jar in use, no CSRF token, just the header."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="https://testserver",
        headers={"Authorization": f"Bearer {token}"},
    )


def error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text


@pytest.fixture
async def owner(make_client: ClientFactory) -> tuple[ApiClient, Account]:
    client = make_client()
    account = await register(client)
    await login(client, account)  # fresh: a factor was just presented
    return client, account


async def database_rows(app: FastAPI, user_id: int) -> list[dict]:
    async with state_of(app)[SESSIONMAKER]() as session:
        result = await session.execute(
            text("SELECT * FROM access_token WHERE user_id = :id ORDER BY id"), {"id": user_id}
        )
        return [dict(row._mapping) for row in result]


# Creating, listing, the token itself.


async def test_a_token_is_shown_once_listed_without_its_value_and_stored_hashed(app, owner):
    client, account = owner
    created = await create_token(client, name="backup script", scopes=["items:read"], expires_in_days=7)
    assert TOKEN.fullmatch(created["token"])
    assert created["name"] == "backup script"
    assert created["scopes"] == ["items:read"]
    assert created["last_used_at"] is None
    lifetime = _parse(created["expires_at"]) - _parse(created["created_at"])
    assert abs(lifetime - 7 * 86400) < 5

    listed = await client.get(f"{API}/users/me/tokens")
    assert listed.status_code == 200
    (entry,) = listed.json()
    assert entry == {key: value for key, value in created.items() if key != "token"}
    assert created["token"] not in listed.text

    (row,) = await database_rows(app, account.id)
    assert created["token"] not in repr(row)  # only its hash
    assert len(row["token_hash"]) == 64


async def test_the_default_lifetime_is_thirty_days(owner):
    client, _ = owner
    created = await create_token(client)
    assert abs(_parse(created["expires_at"]) - _parse(created["created_at"]) - 30 * 86400) < 5


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": ["admin"]},  # an unknown scope
        {"name": "x", "scopes": []},  # a token that could do nothing
        {"name": "x", "scopes": ["items:read"], "expires_in_days": 0},
        {"name": "x", "scopes": ["items:read"], "expires_in_days": 366},
        {"name": "", "scopes": ["items:read"]},
        {"name": "x" * 65, "scopes": ["items:read"]},
        {"name": "tab\there", "scopes": ["items:read"]},
        {"scopes": ["items:read"]},
        {"name": "x", "scopes": ["items:read"], "user_id": 1},  # nothing else is writable
    ],
)
async def test_a_bad_creation_is_422_and_creates_nothing(app, owner, body):
    client, account = owner
    response = await client.post(f"{API}/users/me/tokens", json=body)
    error(response, 422, "validation_error")
    assert await database_rows(app, account.id) == []


async def test_creating_a_token_needs_a_fresh_session(stale_client: ClientFactory):
    client = stale_client()
    account = await register(client)
    await login(client, account)
    await asyncio.sleep(STALE_AFTER_SECONDS + 0.5)
    response = await client.post(f"{API}/users/me/tokens", json={"name": "late", "scopes": ["items:read"]})
    error(response, 403, "reauthentication_required")
    assert (await client.get(f"{API}/users/me/tokens")).json() == []


async def test_anonymous_callers_have_no_tokens_to_list_or_make(client):
    error(await client.get(f"{API}/users/me/tokens"), 401, "not_authenticated")
    response = await client.post(f"{API}/users/me/tokens", json={"name": "x", "scopes": ["items:read"]})
    error(response, 401, "not_authenticated")


# What a token reaches.


async def test_a_token_reads_the_profile_and_writes_items_without_cookie_or_csrf(app, owner):
    client, account = owner
    created = await create_token(client)
    async with bearer(app, created["token"]) as script:
        me = await script.get(f"{API}/users/me")
        assert me.status_code == 200, me.text
        assert me.json()["id"] == account.id
        item = await script.post(f"{API}/items", json={"title": "from a script", "is_private": True})
        assert item.status_code == 201, item.text
        item_id = item.json()["id"]
        # Its own private item, by id and in the list.
        assert (await script.get(f"{API}/items/{item_id}")).status_code == 200
        listed = await script.get(f"{API}/items", params={"q": "from a script", "owner_id": account.id})
        assert item_id in [entry["id"] for entry in listed.json()["items"]]
        updated = await script.put(f"{API}/items/{item_id}", json={"title": "renamed", "is_private": True})
        assert updated.status_code == 200, updated.text
        assert (await script.delete(f"{API}/items/{item_id}")).status_code == 204
    # The owner's browser sees what the script did.
    error(await client.get(f"{API}/items/{item_id}"), 404, "not_found")


async def test_a_token_reaches_only_what_its_scopes_name(app, owner):
    client, account = owner
    reader = await create_token(client, scopes=["items:read"])
    mine = (await client.post(f"{API}/items", json={"title": "owner's", "is_private": True})).json()
    async with bearer(app, reader["token"]) as script:
        assert (await script.get(f"{API}/items/{mine['id']}")).status_code == 200  # its user's private item
        error(await script.get(f"{API}/users/me"), 403, "insufficient_scope")
        response = await script.post(f"{API}/items", json={"title": "not allowed"})
        error(response, 403, "insufficient_scope")
        error(await script.delete(f"{API}/items/{mine['id']}"), 403, "insufficient_scope")
    assert (await client.get(f"{API}/items/{mine['id']}")).status_code == 200  # still there
    titles = [
        item["title"]
        for item in (await client.get(f"{API}/items", params={"owner_id": account.id})).json()["items"]
    ]
    assert "not allowed" not in titles


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users/me/sessions"),
        ("GET", "/users/me/tokens"),
        ("POST", "/users/me/tokens"),
        ("GET", "/users/me/security-events"),
        ("GET", "/users/me/mfa"),
        ("GET", "/users/me/export"),
        ("PATCH", "/users/me"),
        ("DELETE", "/users/me"),
        ("POST", "/auth/logout-all"),
        ("GET", "/users/1"),
        ("GET", "/admin/users"),
        ("DELETE", "/admin/users/1/sessions"),
    ],
)
async def test_a_route_that_names_no_scope_refuses_every_token_even_a_superusers(
    app, make_admin, method, path
):
    admin_client, admin = await make_admin()
    created = await create_token(admin_client)  # every scope there is
    async with bearer(app, created["token"]) as script:
        response = await script.request(method, f"{API}{path}", json={"name": "x", "scopes": ["items:read"]})
    error(response, 403, "insufficient_scope")
    # Nothing happened: the admin's session and account are as they were.
    assert (await admin_client.get(f"{API}/users/me")).status_code == 200
    assert len((await admin_client.get(f"{API}/users/me/tokens")).json()) == 1


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Bearer not-a-token", "invalid_token"),
        ("Bearer cspat_" + "A" * 49, "invalid_token"),  # our shape, a wrong checksum
        ("Bearer " + "x" * 2000, "invalid_token"),
        ("bearer cspat_", "invalid_token"),  # the scheme is case-insensitive (RFC 9110)
        ("Bearer", "not_authenticated"),  # no credentials: no bearer request at all
        ("Basic dXNlcjpwYXNz", "not_authenticated"),  # not a scheme we read
    ],
)
async def test_a_bearer_header_that_is_not_a_token_of_ours_is_refused(app, header, code):
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://testserver"
    ) as script:
        error(await script.get(f"{API}/users/me", headers={"Authorization": header}), 401, code)
        created = await script.post(f"{API}/items", json={"title": "x"}, headers={"Authorization": header})
        # Never created: refused as a bad token, or (not a bearer request) by the CSRF check.
        assert created.status_code in (401, 403), created.text


async def test_a_well_formed_token_we_never_issued_is_401(app, owner):
    client, _ = owner
    created = await create_token(client)
    async with bearer(app, created["token"]) as script:
        await script.get(f"{API}/users/me")
    # Same shape and a valid checksum, another secret: the checksum does not make it ours.
    async with bearer(app, mint()) as stranger:
        error(await stranger.get(f"{API}/users/me"), 401, "invalid_token")


async def test_an_expired_token_is_401(app, owner):
    client, account = owner
    created = await create_token(client)
    async with state_of(app)[SESSIONMAKER]() as session:
        await session.execute(
            text("UPDATE access_token SET expires_at = now() - interval '1 second' WHERE user_id = :id"),
            {"id": account.id},
        )
        await session.commit()
    async with bearer(app, created["token"]) as script:
        error(await script.get(f"{API}/users/me"), 401, "invalid_token")
    # Still listed, with its expiry, until deleted.
    assert len((await client.get(f"{API}/users/me/tokens")).json()) == 1


async def test_a_session_cookie_wins_over_a_bearer_header_and_keeps_csrf(app, owner, make_client):
    client, account = owner
    other = make_client()
    other_account = await register(other)
    await login(other, other_account)
    others_token = (await create_token(other))["token"]
    # A session cookie and another user's token: the cookie alone says who it is.
    me = await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {others_token}"})
    assert me.json()["id"] == account.id
    # And the CSRF check holds for a request with a cookie, whatever its bearer header.
    response = await client.post(
        f"{API}/items",
        json={"title": "csrf"},
        headers={"Authorization": f"Bearer {others_token}"},
        csrf=False,
    )
    error(response, 403, "csrf_failed")
    # A dead session cookie with a good token: still the cookie alone, so 401.
    async with bearer(app, others_token) as script:
        script.cookies.set(client.session_cookie, "expired-session-token")
        error(await script.get(f"{API}/users/me"), 401, "not_authenticated")


# Revocation, at once.


async def test_deleting_a_token_stops_it_at_once_even_in_another_worker(app, settings, owner):
    client, account = owner
    created = await create_token(client)
    async with serving(create_app(settings)) as other_worker:
        async with bearer(app, created["token"]) as here, bearer(other_worker, created["token"]) as there:
            assert (await here.get(f"{API}/users/me")).status_code == 200
            assert (await there.get(f"{API}/users/me")).status_code == 200  # cached in both
            deleted = await client.delete(f"{API}/users/me/tokens/{created['id']}")
            assert deleted.status_code == 204
            error(await here.get(f"{API}/users/me"), 401, "invalid_token")
            error(await there.get(f"{API}/users/me"), 401, "invalid_token")
    assert (await client.get(f"{API}/users/me/tokens")).json() == []
    assert await database_rows(app, account.id) == []


async def test_a_token_of_another_user_cannot_be_deleted(app, owner, make_client):
    client, _ = owner
    created = await create_token(client)
    stranger = make_client()
    stranger_account = await register(stranger)
    await login(stranger, stranger_account)
    error(await stranger.delete(f"{API}/users/me/tokens/{created['id']}"), 404, "not_found")
    error(await client.delete(f"{API}/users/me/tokens/{2**31}"), 422, "validation_error")
    async with bearer(app, created["token"]) as script:
        assert (await script.get(f"{API}/users/me")).status_code == 200


async def test_deleting_one_token_leaves_the_others_working(app, owner):
    client, _ = owner
    first, second = await create_token(client, name="one"), await create_token(client, name="two")
    async with bearer(app, second["token"]) as script:
        assert (await script.get(f"{API}/users/me")).status_code == 200
        assert (await client.delete(f"{API}/users/me/tokens/{first['id']}")).status_code == 204
        assert (await script.get(f"{API}/users/me")).status_code == 200


async def test_an_admin_revoking_sessions_or_deactivating_revokes_the_tokens(app, make_admin, make_client):
    admin, _ = await make_admin()
    for action in ("sessions", "deactivate"):
        client = make_client()
        account = await register(client)
        await login(client, account)
        created = await create_token(client)
        async with bearer(app, created["token"]) as script:
            assert (await script.get(f"{API}/users/me")).status_code == 200
            if action == "sessions":
                response = await admin.delete(f"{API}/admin/users/{account.id}/sessions")
            else:
                response = await admin.patch(f"{API}/admin/users/{account.id}", json={"is_active": False})
            assert response.status_code in (200, 204), response.text
            error(await script.get(f"{API}/users/me"), 401, "invalid_token")
        assert await database_rows(app, account.id) == []


async def test_deleting_the_account_revokes_its_tokens(app, owner):
    client, account = owner
    created = await create_token(client)
    async with bearer(app, created["token"]) as script:
        assert (await script.get(f"{API}/users/me")).status_code == 200
        assert (await client.delete(f"{API}/users/me")).status_code == 204
        error(await script.get(f"{API}/users/me"), 401, "invalid_token")


async def test_a_password_reset_revokes_the_tokens(mail_app, mail_client, inbox):
    client = mail_client()
    account = await register(client)
    await login(client, account)
    created = await create_token(client)
    async with bearer(mail_app, created["token"]) as script:
        assert (await script.get(f"{API}/users/me")).status_code == 200
        assert (
            await client.post(f"{API}/auth/forgot-password", json={"email": account.email})
        ).status_code == 202
        mail = await inbox.wait_for(account.email, event="password_reset_requested", timeout=DEADLINE_SECONDS)
        token = re.search(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", mail.get_content())
        assert token
        reset = await mail_client().post(
            f"{API}/auth/reset-password",
            json={"token": token.group(), "password": "a-new-horse-battery-staple"},
        )
        assert reset.status_code == 200, reset.text
        error(await script.get(f"{API}/users/me"), 401, "invalid_token")


# Use, and what the log says.


async def test_last_use_is_recorded_once_a_minute_at_most(app, owner):
    client, _ = owner
    created = await create_token(client)
    async with bearer(app, created["token"]) as script:
        assert (await script.get(f"{API}/users/me")).status_code == 200
        first = await _last_used(client, created["id"])
        assert (await script.get(f"{API}/users/me")).status_code == 200
        await asyncio.sleep(0.2)  # a second write, were there one, would be in by now
        assert await _last_used(client, created["id"]) == first


async def _last_used(client: ApiClient, token_id: int) -> str:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        (entry,) = [t for t in (await client.get(f"{API}/users/me/tokens")).json() if t["id"] == token_id]
        if entry["last_used_at"] is not None:
            return entry["last_used_at"]
        assert time.monotonic() < deadline, "last_used_at never written"
        await asyncio.sleep(0.05)


async def test_a_cached_token_costs_no_database_query(app, owner):
    client, _ = owner
    created = await create_token(client)
    engine = state_of(app)[SESSIONMAKER].kw["bind"]
    async with bearer(app, created["token"]) as script:
        assert (await script.get(f"{API}/users/me")).status_code == 200  # the miss: one read
        await _last_used(client, created["id"])  # and its write, done
        with _statements(engine) as seen:
            for _ in range(5):
                assert (await script.get(f"{API}/users/me")).status_code == 200
    assert seen == []


@contextmanager
def _statements(engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_creation_and_revocation_are_in_the_security_log_without_the_token(owner):
    client, _ = owner
    created = await create_token(client, name="deploy bot")
    assert (await client.delete(f"{API}/users/me/tokens/{created['id']}")).status_code == 204
    log = await client.get(f"{API}/users/me/security-events?limit=100")
    assert created["token"] not in log.text
    entries = [e for e in log.json()["items"] if e["event"] in ("token_created", "token_revoked")]
    assert [e["event"] for e in entries] == ["token_revoked", "token_created"]  # newest first
    assert all(e["details"]["name"] == "deploy bot" for e in entries)
    assert "token_created" in await events(client)


def _parse(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()
