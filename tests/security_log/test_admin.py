"""`GET /admin/users/{id}/security-events` (API.md section 10): the user's own log, for
superusers only."""

import pytest
from sqlalchemy import select

from app.db import SESSIONMAKER
from app.models import SecurityLogEntry
from app.state import state_of
from tests.admin.helpers import NO_SUCH_IDS, assert_error
from tests.fixtures.client import API, login, register, unique
from tests.security_log.helpers import read, wait_for_events


def events_of(user_id: int | str) -> str:
    return f"{API}/admin/users/{user_id}/security-events"


@pytest.fixture
async def target(make_client):
    client = make_client()
    account = await register(client)
    await login(client, account)
    await client.post(f"{API}/auth/logout")
    await login(client, account)
    await wait_for_events(client, ["login", "logout", "login", "new_device_login"])
    return client, account


async def test_a_superuser_reads_a_users_log_as_the_user_does(make_admin, target):
    admin, _ = await make_admin()
    client, account = target
    own = await read(client, limit=100)
    seen = await read(admin, events_of(account.id), limit=100)
    assert seen == own
    paged = await read(admin, events_of(account.id), limit=1, offset=1)
    assert paged["items"] == own["items"][1:2]
    assert (paged["total"], paged["limit"], paged["offset"]) == (4, 1, 1)


async def test_other_users_get_403_and_anonymous_callers_401(client, user, target):
    _, account = target
    other, _ = user
    assert_error(await other.get(events_of(account.id)), 403, "forbidden")
    assert_error(await client.get(events_of(account.id)), 401, "not_authenticated")


@pytest.mark.parametrize("user_id", NO_SUCH_IDS)
async def test_an_unknown_user_is_404(make_admin, user_id):
    admin, _ = await make_admin()
    assert_error(await admin.get(events_of(user_id)), 404, "not_found")


async def test_limit_and_offset_are_validated(make_admin, target):
    admin, _ = await make_admin()
    _, account = target
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}):
        assert_error(await admin.get(events_of(account.id), params=params), 422, "validation_error")


async def test_a_deleted_users_log_stays_without_the_user(app, make_admin, make_client):
    agent = {"User-Agent": f"seclog-test/{unique()}"}
    client = make_client(headers=agent)
    account = await register(client)
    await login(client, account)
    await wait_for_events(client, ["login", "new_device_login"])
    admin, _ = await make_admin()
    assert (await admin.delete(f"{API}/admin/users/{account.id}")).status_code == 204
    async with state_of(app)[SESSIONMAKER]() as session:
        rows = list(
            await session.scalars(
                select(SecurityLogEntry).where(SecurityLogEntry.user_agent == agent["User-Agent"])
            )
        )
    assert sorted((row.event, row.user_id) for row in rows) == [("login", None), ("new_device_login", None)]
    assert_error(await admin.get(events_of(account.id)), 404, "not_found")
