"""API.md sections 1 and 5: the last active superuser can be neither deactivated, demoted nor
deleted, also when two admins try it at the same moment.

The count covers every active superuser in the database, so these tests need a database in
which they know every user: a scratch PostgreSQL database of their own (emptied before each
test), and the embedded SQLite default in a temporary directory.
"""

import asyncio
import logging
from collections.abc import AsyncIterator

import anyio.to_thread
import asyncpg
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from app.db import SESSIONMAKER
from app.main import create_app
from app.models import User
from app.ops.bootstrap import migrate
from app.state import state_of
from tests.admin.helpers import ADMIN_USERS, admin_get, assert_error
from tests.conftest import (
    TEST_DATABASE,
    client_factory,
    drop_database,
    make_settings,
    recreate_database,
    running,
)
from tests.fixtures.client import API, Account, ApiClient, login, register

SCRATCH_DATABASE = f"{TEST_DATABASE}_last_superuser"


@pytest.fixture(scope="module")
async def scratch_app(redis_prefix: str) -> AsyncIterator[FastAPI]:
    url = await recreate_database(SCRATCH_DATABASE)
    settings = make_settings(url, f"{redis_prefix}lastsu:")
    await anyio.to_thread.run_sync(migrate, settings)
    async for app in running(create_app(settings)):
        yield app
    await drop_database(SCRATCH_DATABASE)


@pytest.fixture
async def stack(scratch_app: FastAPI) -> AsyncIterator["Stack"]:
    async with state_of(scratch_app)[SESSIONMAKER]() as session:
        await session.execute(text('TRUNCATE "user" CASCADE'))
        await session.commit()
    stack = Stack(scratch_app)
    yield stack
    for client in stack.clients:
        await client.aclose()


class Stack:
    """An app whose database holds only the users a test makes."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.factory = client_factory(app)
        self.clients: list[ApiClient] = []

    def client(self) -> ApiClient:
        client = self.factory()
        self.clients.append(client)
        return client

    async def set_flags(self, user_id: int, **flags: bool) -> None:
        async with state_of(self.app)[SESSIONMAKER]() as session:
            row = await session.get(User, user_id)
            assert row is not None
            for name, value in flags.items():
                setattr(row, name, value)
            await session.commit()

    async def admin(self) -> tuple[ApiClient, Account]:
        client = self.client()
        account = await register(client)
        await self.set_flags(account.id, is_superuser=True)
        await login(client, account)
        return client, account

    async def active_superusers(self) -> list[int]:
        async with state_of(self.app)[SESSIONMAKER]() as session:
            rows = await session.scalars(select(User.id).where(User.is_superuser, User.is_active))
            return sorted(rows)

    async def user_count(self) -> int:
        async with state_of(self.app)[SESSIONMAKER]() as session:
            return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def assert_the_only_admin_cannot_remove_themselves(stack: Stack) -> None:
    admin_client, account = await stack.admin()
    attempts = [
        admin_client.patch(f"{ADMIN_USERS}/{account.id}", json={"is_superuser": False}),
        admin_client.patch(f"{ADMIN_USERS}/{account.id}", json={"is_active": False}),
        admin_client.patch(f"{ADMIN_USERS}/{account.id}", json={"is_active": False, "is_superuser": False}),
        admin_client.patch(
            f"{ADMIN_USERS}/{account.id}", json={"is_superuser": False, "username": "renamed"}
        ),
        admin_client.delete(f"{ADMIN_USERS}/{account.id}"),
    ]
    for attempt in attempts:
        assert_error(await attempt, 409, "last_superuser")
    # Nothing changed, and the admin's session still works.
    body = await admin_get(admin_client, account.id)
    assert (body["is_active"], body["is_superuser"], body["username"]) == (True, True, account.username)
    assert await stack.active_superusers() == [account.id]
    # Changes that keep them an active superuser are allowed.
    allowed = await admin_client.patch(f"{ADMIN_USERS}/{account.id}", json={"is_superuser": True})
    assert allowed.status_code == 200, allowed.text


async def test_the_only_admin_cannot_demote_deactivate_or_delete_themselves(stack):
    await assert_the_only_admin_cannot_remove_themselves(stack)


async def test_an_inactive_superuser_does_not_count(stack):
    admin_client, account = await stack.admin()
    _, dormant = await stack.admin()
    await stack.set_flags(dormant.id, is_active=False)
    response = await admin_client.patch(f"{ADMIN_USERS}/{account.id}", json={"is_superuser": False})
    assert_error(response, 409, "last_superuser")
    # The inactive superuser may be demoted or deleted freely.
    assert (
        await admin_client.patch(f"{ADMIN_USERS}/{dormant.id}", json={"is_superuser": False})
    ).status_code == 200
    assert (await admin_client.delete(f"{ADMIN_USERS}/{dormant.id}")).status_code == 204


async def test_an_admin_may_demote_themselves_while_another_remains(stack):
    first_client, first = await stack.admin()
    _, second = await stack.admin()
    response = await first_client.patch(f"{ADMIN_USERS}/{first.id}", json={"is_superuser": False})
    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["user"]
    assert await stack.active_superusers() == [second.id]
    # Demotion ended their own sessions too; logged in again, they are an ordinary user.
    assert_error(await first_client.get(ADMIN_USERS), 401, "not_authenticated")
    await login(first_client, first)
    assert_error(await first_client.get(ADMIN_USERS), 403, "forbidden")


async def test_the_refusal_is_audited_as_denied(stack, caplog):
    caplog.set_level(logging.INFO, logger="app.audit")
    admin_client, account = await stack.admin()
    assert_error(await admin_client.delete(f"{ADMIN_USERS}/{account.id}"), 409, "last_superuser")
    records = [r for r in caplog.records if getattr(r, "event", None) == "admin.delete_user"]
    assert [(r.outcome, r.actor, r.target, r.code) for r in records] == [
        ("denied", account.id, account.id, "last_superuser")
    ]


MUTUAL = {
    "demote": lambda client, target: client.patch(f"{ADMIN_USERS}/{target}", json={"is_superuser": False}),
    "deactivate": lambda client, target: client.patch(f"{ADMIN_USERS}/{target}", json={"is_active": False}),
    "delete": lambda client, target: client.delete(f"{ADMIN_USERS}/{target}"),
}


@pytest.mark.parametrize(
    ("first_action", "second_action"), [("demote", "demote"), ("deactivate", "delete"), ("delete", "demote")]
)
async def test_two_admins_removing_each_other_at_once_leave_exactly_one(stack, first_action, second_action):
    for _ in range(5):  # several rounds: a race that is lost only sometimes must show
        first_client, first = await stack.admin()
        second_client, second = await stack.admin()
        others = set(await stack.active_superusers()) - {first.id, second.id}
        # Earlier rounds leave one superuser behind; take them out of the count first.
        for other in others:
            await stack.set_flags(other, is_superuser=False)
        for client in (first_client, second_client):
            await client.csrf_token()
        responses = await asyncio.gather(
            MUTUAL[first_action](first_client, second.id), MUTUAL[second_action](second_client, first.id)
        )
        statuses = sorted(r.status_code for r in responses)
        # The one who waited for the lock is no superuser by then: refused as such (403),
        # or, had it still been one, as the last one (409).
        assert statuses in ([200, 403], [204, 403], [200, 409], [204, 409]), [r.text for r in responses]
        refused = next(r for r in responses if r.status_code in (403, 409))
        assert_error(
            refused, refused.status_code, "forbidden" if refused.status_code == 403 else "last_superuser"
        )
        survivors = await stack.active_superusers()
        assert len(survivors) == 1, survivors
        assert survivors[0] in {first.id, second.id}


async def test_the_guard_holds_on_the_embedded_sqlite_default(tmp_path, redis_prefix):
    settings = make_settings(None, f"{redis_prefix}unused:", redis_url=None, sqlite_path=tmp_path / "app.db")
    assert settings.embedded
    async for app in running(create_app(settings)):
        stack = Stack(app)
        try:
            await assert_the_only_admin_cannot_remove_themselves(stack)
            [only] = await stack.active_superusers()
            second_client, _ = await stack.admin()
            response = await second_client.patch(f"{ADMIN_USERS}/{only}", json={"is_superuser": False})
            assert response.status_code == 200, response.text
            assert (await second_client.delete(f"{ADMIN_USERS}/{only}")).status_code == 204
            assert await stack.user_count() == 1
        finally:
            for client in stack.clients:
                await client.aclose()


async def test_an_admin_demoted_while_their_request_waits_acts_no_further(
    make_admin, make_client, database_url
):
    # The session that let the admin in was read before the lock; a demotion committing
    # meanwhile must stop the change (the last-superuser guard alone did not).
    admin, account = await make_admin()
    await make_admin()  # another superuser remains, so the demotion itself is allowed
    target = await register(make_client())
    demoter = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        demotion = demoter.transaction()
        await demotion.start()
        await demoter.execute('UPDATE "user" SET is_superuser = false WHERE id = $1', account.id)
        change = asyncio.create_task(admin.patch(f"{ADMIN_USERS}/{target.id}", json={"is_verified": True}))
        await asyncio.sleep(0.3)  # the request now waits for the demoted row's lock
        assert not change.done()
        await demotion.commit()
        response = await change
    finally:
        await demoter.close()
    assert_error(response, 403, "forbidden")
    async with make_client() as other:
        await login(other, target)
        assert (await other.get(f"{API}/users/me")).json()["is_verified"] is False


async def test_the_only_admin_cannot_delete_their_own_account(stack: Stack):
    admin_client, account = await stack.admin()
    response = await admin_client.delete(f"{API}/users/me")
    assert_error(response, 409, "last_superuser")
    assert await stack.active_superusers() == [account.id]
    # With a second active superuser, the first may go.
    await stack.admin()
    assert (await admin_client.delete(f"{API}/users/me")).status_code == 204
    assert account.id not in await stack.active_superusers()
