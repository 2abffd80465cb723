"""What the security log records (API.md section 10), newest first, with ip and user agent;
and what it does not: another user's events, an unknown name's failed login, a refused
change."""

from sqlalchemy import func, select

from app.db import SESSIONMAKER
from app.models import SecurityLogEntry
from app.state import state_of
from tests.fixtures.client import API, Account, login, register, unique
from tests.security_log.helpers import EVENTS, names, read, wait_for, wait_for_events

NEW_PASSWORD = "an-entirely-new-passphrase-42"


def agent() -> dict[str, str]:
    return {"User-Agent": f"seclog-test/{unique()}"}


async def wrong_password(make_client, identifier: str, headers: dict[str, str] | None = None) -> None:
    client = make_client(headers=headers or {})
    response = await client.post(
        f"{API}/auth/login", json={"username": identifier, "password": "not-the-one"}
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_credentials"


async def other_session_id(client) -> str:
    sessions = (await client.get(f"{API}/users/me/sessions")).json()
    return next(s["id"] for s in sessions if not s["current"])


async def test_the_session_events_and_a_password_change_are_listed_newest_first(make_client):
    headers = agent()
    first = make_client(headers=headers)
    account = await register(first)
    await login(first, account)
    await wrong_password(make_client, account.username, headers)
    second = make_client(headers=headers)
    await login(second, account)
    revoked = await other_session_id(first)
    assert (await first.delete(f"{API}/users/me/sessions/{revoked}")).status_code == 204
    changed = await first.patch(
        f"{API}/users/me", json={"password": NEW_PASSWORD, "current_password": account.password}
    )
    assert changed.status_code == 200, changed.text
    account.password = NEW_PASSWORD
    third = make_client(headers=headers)
    await login(third, account)
    assert (await third.post(f"{API}/auth/logout-all")).status_code == 200
    fourth = make_client(headers=headers)
    await login(fourth, account)
    assert (await fourth.post(f"{API}/auth/logout")).status_code == 200
    reader = make_client(headers=headers)
    await login(reader, account)

    expected = [
        "login",
        "logout",
        "login",
        "logout_all",
        "login",
        "password_changed",
        "session_revoked",
        "login",
        "login_failed",
        "login",
    ]
    page = await wait_for_events(reader, expected)
    assert page["total"] == len(expected)
    items = page["items"]
    for item in items:
        assert item["ip"] == "127.0.0.1", item
        assert item["user_agent"] == headers["User-Agent"], item
    stamps = [item["created_at"] for item in items]
    assert stamps == sorted(stamps, reverse=True)
    by_event = {item["event"]: item for item in reversed(items)}  # the newest of each
    assert by_event["session_revoked"]["details"] == {"session_id": revoked}
    assert by_event["logout_all"]["details"] == {"sessions_revoked": 2}  # first and third
    assert by_event["password_changed"]["details"] == {"sessions_revoked": 0}  # second was ended
    assert by_event["login"]["details"]["amr"] == ["pwd"]
    assert by_event["login_failed"]["details"] is None


async def test_pages_follow_limit_and_offset_with_the_total(make_client):
    client = make_client()
    account = await register(client)
    for _ in range(5):
        await login(client, account)
    # Five logins, and the first one's new_device_login: six events.
    whole = await wait_for(client, lambda page: page["total"] == 6, limit=100)
    assert (whole["limit"], whole["offset"]) == (100, 0)
    pages = [await read(client, limit=4, offset=offset) for offset in (0, 4)]
    assert [len(page["items"]) for page in pages] == [4, 2]
    assert all(page["total"] == 6 and page["limit"] == 4 for page in pages)
    assert [page["offset"] for page in pages] == [0, 4]
    assert [item for page in pages for item in page["items"]] == whole["items"]
    assert (await read(client, limit=2, offset=6))["items"] == []
    default = await read(client)
    assert (default["limit"], default["offset"]) == (20, 0)


async def test_limit_and_offset_are_validated(user):
    client, _account = user
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "x"}):
        response = await client.get(EVENTS, params=params)
        assert response.status_code == 422, params
        assert response.json()["error"]["code"] == "validation_error"


async def test_anonymous_callers_get_401(client):
    response = await client.get(EVENTS)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


async def test_another_users_events_never_appear(make_client):
    watched, other = make_client(), make_client()
    alice = await register(watched)
    bob = await register(other)
    await login(watched, alice)
    await login(other, bob)
    for _ in range(3):
        await wrong_password(make_client, alice.username)
    await wait_for_events(watched, ["login_failed"] * 3 + ["login"])
    page = await read(other, limit=100)
    assert names(page) == ["login", "new_device_login"]
    assert page["total"] == 2


async def rows_with_agent(app, user_agent: str) -> int:
    async with state_of(app)[SESSIONMAKER]() as session:
        statement = select(func.count()).where(SecurityLogEntry.user_agent == user_agent)
        return await session.scalar(statement) or 0


async def test_a_failed_login_for_an_unknown_name_records_nothing(app, make_client):
    headers = agent()
    await wrong_password(make_client, unique("nobody"), headers)
    await wrong_password(make_client, f"{unique('nobody')}@example.com", headers)
    # A recorded event from the same caller, after them: once it is in, they would be too.
    client = make_client()
    account = await register(client)
    await wrong_password(make_client, account.username, headers)
    await login(client, account)
    await wait_for_events(client, ["login", "login_failed"])
    assert await rows_with_agent(app, headers["User-Agent"]) == 1


async def test_a_refused_request_records_nothing(make_client):
    client = make_client()
    account: Account = await register(client)
    await login(client, account)
    await wait_for_events(client, ["login"])
    wrong = await client.patch(f"{API}/users/me", json={"password": NEW_PASSWORD, "current_password": "nope"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "invalid_current_password"
    weak = await client.patch(
        f"{API}/users/me", json={"password": "password", "current_password": account.password}
    )
    assert weak.status_code == 400
    assert weak.json()["error"]["code"] == "invalid_password"
    assert (await client.delete(f"{API}/users/me/sessions/no-such-session")).status_code == 404
    # A logged event after them: the refused ones would have been written before it.
    await client.post(f"{API}/auth/logout-all")
    await login(client, account)
    await wait_for_events(client, ["login", "logout_all", "login"])
