"""API.md section 10: export and deletion, both on a fresh session."""

import asyncio
import json

from sqlalchemy import select

from app.db import SESSIONMAKER
from app.models import SecurityLogEntry
from app.state import state_of
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
