"""API.md section 10: export and deletion, both on a fresh session."""

import asyncio
import json

from sqlalchemy import select, text

from app.db import SESSIONMAKER
from app.models import SecurityLogEntry
from app.state import state_of
from app.users.export import BATCH
from tests.account.helpers import API, logged_in
from tests.conftest import STALE_AFTER_SECONDS
from tests.fixtures.client import login


async def test_the_export_holds_the_account_and_no_secret(mail_client):
    client, account = await logged_in(mail_client)
    created = await client.post(f"{API}/items", json={"title": "mine", "is_private": True})
    assert created.status_code == 201

    response = await client.get(f"{API}/users/me/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith("attachment;")
    document = response.json()
    assert set(document) == {
        "user",
        "items",
        "sessions",
        "passkeys",
        "identities",  # at sign-in providers (API.md section 11)
        "tokens",
        "security_events",
        "exported_at",
    }
    assert document["user"]["id"] == account.id
    assert [item["title"] for item in document["items"]] == ["mine"]
    assert [s["current"] for s in document["sessions"]] == [True]
    assert "login" in {event["event"] for event in document["security_events"]}
    text = json.dumps(document)
    assert "hashed_password" not in text
    assert account.password not in text
    assert client.session_token not in text


async def test_a_large_export_is_streamed_whole_and_in_order(mail_client, mail_app):
    # More rows than the export's batch of each kind (seeded by SQL), with equal timestamps
    # for the events: the keyset must neither skip nor repeat one.
    client, account = await logged_in(mail_client)
    items, events = 2 * BATCH + 7, BATCH + 3
    async with state_of(mail_app)[SESSIONMAKER]() as session:
        await session.execute(
            text(
                "INSERT INTO item (title, description, is_private, owner_id, created_at, updated_at)"
                " SELECT 'bulk ' || n, '', n % 2 = 0, :owner, now(), now() FROM generate_series(1, :n) n"
            ),
            {"owner": account.id, "n": items},
        )
        await session.execute(
            text(
                "INSERT INTO security_event (user_id, event, created_at, ip, user_agent)"
                " SELECT :user, 'reauthenticated', timestamp '2026-01-01 00:00:00+00', '', ''"
                " FROM generate_series(1, :n)"
            ),
            {"user": account.id, "n": events},
        )
        await session.commit()
    response = await client.get(f"{API}/users/me/export")
    assert response.status_code == 200, response.text
    assert "content-length" not in response.headers  # streamed
    document = response.json()
    ids = [item["id"] for item in document["items"]]
    assert len(ids) == items
    assert ids == sorted(set(ids))
    logged = document["security_events"]
    assert len([e for e in logged if e["event"] == "reauthenticated"]) == events
    assert len({e["id"] for e in logged}) == len(logged)
    keys = [(e["created_at"], e["id"]) for e in logged]
    assert keys == sorted(keys, reverse=True)  # newest first, as the log's pages


async def test_export_and_deletion_need_a_fresh_session(stale_client):
    client, _ = await logged_in(stale_client)
    await asyncio.sleep(STALE_AFTER_SECONDS + 0.5)
    for response in (await client.get(f"{API}/users/me/export"), await client.delete(f"{API}/users/me")):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "reauthentication_required"
    assert (await client.get(f"{API}/users/me")).status_code == 200  # nothing was deleted


async def test_deleting_the_account_removes_it_and_keeps_a_record_without_the_email(
    mail_client, mail_app, inbox
):
    client, account = await logged_in(mail_client)
    other_browser = mail_client()
    await login(other_browser, account)
    item = (await client.post(f"{API}/items", json={"title": "gone soon"})).json()

    response = await client.delete(f"{API}/users/me")
    assert response.status_code == 204, response.text
    await inbox.wait_for(account.email, event="account_deleted")

    assert (await client.get(f"{API}/users/me")).status_code == 401
    assert (await other_browser.get(f"{API}/users/me")).status_code == 401
    assert (await mail_client().get(f"{API}/items/{item['id']}")).status_code == 404
    assert (await mail_client().get(f"{API}/users/{account.id}")).status_code == 404
    relogin = await mail_client().post(
        f"{API}/auth/login", json={"username": account.username, "password": account.password}
    )
    assert relogin.status_code == 401

    async with state_of(mail_app)[SESSIONMAKER]() as session:
        rows = (
            await session.scalars(select(SecurityLogEntry).where(SecurityLogEntry.event == "account_deleted"))
        ).all()
    mine = [row for row in rows if (row.details or {}).get("user_id") == account.id]
    assert len(mine) == 1
    assert mine[0].user_id is None
    assert account.email not in json.dumps(mine[0].details)
