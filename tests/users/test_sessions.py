"""API.md sections 3 and 4: logout-all, the sessions list and ending one session."""

from app.auth.sessions.types import MAX_LOGINS_PER_USER
from tests.auth.helpers import attributes, set_cookies
from tests.fixtures.client import API, login, register


async def test_logout_all_ends_every_session_of_the_user_and_no_one_elses(user, make_client):
    first, account = user
    second = make_client()
    await login(second, account)
    bystander = make_client()
    await login(bystander, await register(bystander))
    response = await first.post(f"{API}/auth/logout-all")
    assert response.status_code == 200
    assert response.json() == {"detail": "Logged out everywhere"}
    assert attributes(set_cookies(response)["__Host-session"])["max-age"] == "0"
    assert (await first.get(f"{API}/users/me")).status_code == 401
    assert (await second.get(f"{API}/users/me")).status_code == 401
    assert (await second.post(f"{API}/auth/refresh")).status_code == 401  # refresh tokens too
    assert (await bystander.get(f"{API}/users/me")).status_code == 200


async def test_logout_all_needs_a_session(client):
    response = await client.post(f"{API}/auth/logout-all")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


async def test_sessions_list_one_entry_per_login_without_token_material(make_client):
    laptop = make_client(headers={"User-Agent": "laptop-browser/1.0"})
    account = await register(laptop)
    await login(laptop, account)
    phone = make_client(headers={"User-Agent": "phone-browser/2.0"})
    await login(phone, account)
    response = await laptop.get(f"{API}/users/me/sessions")
    assert response.status_code == 200
    sessions = response.json()
    assert len(sessions) == 2
    for entry in sessions:
        assert set(entry) == {"id", "created_at", "last_seen_at", "user_agent", "ip", "current", "aal", "amr"}
        assert (entry["aal"], entry["amr"]) == (1, ["pwd"])  # a password alone (API.md section 9)
        assert entry["created_at"].endswith(("Z", "+00:00"))
        assert entry["ip"] == "127.0.0.1"
    assert {e["user_agent"] for e in sessions} == {"laptop-browser/1.0", "phone-browser/2.0"}
    current = [e for e in sessions if e["current"]]
    assert len(current) == 1
    assert current[0]["user_agent"] == "laptop-browser/1.0"
    for secret in (laptop.session_token, phone.session_token, laptop.cookies.get("__Secure-refresh")):
        assert secret not in response.text


async def test_a_session_survives_refresh_as_the_same_entry(user):
    client, _ = user
    before = (await client.get(f"{API}/users/me/sessions")).json()
    assert (await client.post(f"{API}/auth/refresh")).status_code == 200
    after = (await client.get(f"{API}/users/me/sessions")).json()
    assert [e["id"] for e in after] == [e["id"] for e in before]
    assert after[0]["current"] is True


async def test_users_see_only_their_own_sessions(user, make_client):
    alice, _ = user
    bob = make_client()
    await login(bob, await register(bob))
    alice_ids = {e["id"] for e in (await alice.get(f"{API}/users/me/sessions")).json()}
    bob_ids = {e["id"] for e in (await bob.get(f"{API}/users/me/sessions")).json()}
    assert alice_ids.isdisjoint(bob_ids)


async def test_deleting_a_session_ends_it_and_only_it(user, make_client):
    laptop, account = user
    phone = make_client()
    await login(phone, account)
    sessions = (await laptop.get(f"{API}/users/me/sessions")).json()
    phone_id = next(e["id"] for e in sessions if not e["current"])
    response = await laptop.delete(f"{API}/users/me/sessions/{phone_id}")
    assert response.status_code == 204
    assert (await phone.get(f"{API}/users/me")).status_code == 401
    assert (await phone.post(f"{API}/auth/refresh")).status_code == 401
    assert (await laptop.get(f"{API}/users/me")).status_code == 200
    assert (await laptop.delete(f"{API}/users/me/sessions/{phone_id}")).status_code == 404


async def test_another_users_session_cannot_be_deleted(user, make_client):
    alice, _ = user
    bob = make_client()
    await login(bob, await register(bob))
    bob_id = (await bob.get(f"{API}/users/me/sessions")).json()[0]["id"]
    response = await alice.delete(f"{API}/users/me/sessions/{bob_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert (await bob.get(f"{API}/users/me")).status_code == 200


async def test_deleting_the_current_session_logs_out(user):
    client, _ = user
    current = (await client.get(f"{API}/users/me/sessions")).json()[0]["id"]
    response = await client.delete(f"{API}/users/me/sessions/{current}")
    assert response.status_code == 204
    assert attributes(set_cookies(response)["__Host-session"])["max-age"] == "0"
    assert (await client.get(f"{API}/users/me")).status_code == 401


async def test_sessions_routes_need_a_session(client):
    assert (await client.get(f"{API}/users/me/sessions")).status_code == 401
    assert (await client.delete(f"{API}/users/me/sessions/abc")).status_code == 401


async def test_a_user_holds_at_most_the_cap_of_logins_and_the_next_ends_the_oldest(make_client):
    # 20,000 logins of one account made its sessions list 7 MiB and logout-all one
    # 200 ms script that stalled every Redis client.
    oldest = make_client()
    account = await register(oldest)
    await login(oldest, account)
    second = make_client()
    await login(second, account)
    for _ in range(MAX_LOGINS_PER_USER - 1):
        await login(make_client(), account)
    assert (await oldest.get(f"{API}/users/me")).status_code == 401
    assert (await second.get(f"{API}/users/me")).status_code == 200
    everything = await second.get(f"{API}/users/me/sessions")
    listed = everything.json()
    assert len(listed) == MAX_LOGINS_PER_USER
    assert everything.headers["x-total-count"] == str(MAX_LOGINS_PER_USER)
    page = await second.get(f"{API}/users/me/sessions", params={"limit": 10, "offset": 45})
    assert page.json() == listed[45:]
    assert page.headers["x-total-count"] == str(MAX_LOGINS_PER_USER)
    too_many = await second.get(f"{API}/users/me/sessions", params={"limit": MAX_LOGINS_PER_USER + 1})
    assert too_many.status_code == 422
    assert (await second.post(f"{API}/auth/logout-all")).status_code == 200
    assert (await second.get(f"{API}/users/me")).status_code == 401
