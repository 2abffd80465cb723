"""API.md section 3: POST /auth/logout revokes server-side and always clears the cookies."""

from tests.auth.helpers import attributes, set_cookies
from tests.fixtures.client import API, login


async def test_logout_revokes_the_session_server_side(user, make_client):
    client, _ = user
    token = client.session_token
    response = await client.post(f"{API}/auth/logout")
    assert response.status_code == 200
    assert response.json() == {"detail": "Logged out"}
    replay = make_client()
    response = await replay.get(f"{API}/users/me", headers={"Cookie": f"__Host-session={token}"})
    assert response.status_code == 401


async def test_logout_clears_the_cookies(user):
    client, _ = user
    response = await client.post(f"{API}/auth/logout")
    cookies = set_cookies(response)
    for name in ("__Host-session", "__Secure-refresh", "__Host-csrftoken"):
        assert attributes(cookies[name])["max-age"] == "0", name
    assert attributes(cookies["__Secure-refresh"])["path"] == "/api/v1/auth"
    assert response.headers["cache-control"] == "no-store"
    assert (await client.get(f"{API}/users/me")).status_code == 401


async def test_logout_of_a_dead_session_is_401_and_still_clears_the_cookies(user, make_client):
    client, _ = user
    token, csrf = client.session_token, await client.csrf_token()
    assert (await client.post(f"{API}/auth/logout")).status_code == 200
    # A second tab still holding the same, now revoked, cookies.
    other_tab = make_client()
    response = await other_tab.post(
        f"{API}/auth/logout",
        headers={"X-CSRF-Token": csrf, "Cookie": f"__Host-session={token}; __Host-csrftoken={csrf}"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    cookies = set_cookies(response)
    assert attributes(cookies["__Host-session"])["max-age"] == "0"
    assert attributes(cookies["__Host-csrftoken"])["max-age"] == "0"


async def test_logout_without_any_session_is_401_and_clears_the_cookies(client):
    response = await client.post(f"{API}/auth/logout")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert attributes(set_cookies(response)["__Host-session"])["max-age"] == "0"


async def test_logout_ends_only_this_session(make_client, user):
    first, account = user
    second = make_client()
    await login(second, account)
    assert (await first.post(f"{API}/auth/logout")).status_code == 200
    assert (await second.get(f"{API}/users/me")).status_code == 200


async def test_logout_with_only_the_refresh_cookie_left_ends_that_login(user, make_client):
    # The session cookie expired in the browser; the refresh cookie is a login all the same.
    client, _ = user
    refresh = client.cookies.get("__Secure-refresh")
    assert refresh
    # The CSRF token of a browser without a session cookie (one bound to no session).
    csrf = (await make_client().get(f"{API}/auth/csrf")).json()["csrf_token"]
    leftover = make_client()
    response = await leftover.post(
        f"{API}/auth/logout",
        headers={"X-CSRF-Token": csrf, "Cookie": f"__Secure-refresh={refresh}; __Host-csrftoken={csrf}"},
    )
    assert response.status_code == 200
    # The session of that login ended with it, and the refresh token cannot bring it back.
    assert (await client.get(f"{API}/users/me")).status_code == 401
    again = await leftover.post(
        f"{API}/auth/refresh",
        headers={"X-CSRF-Token": csrf, "Cookie": f"__Secure-refresh={refresh}; __Host-csrftoken={csrf}"},
    )
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "invalid_refresh_token"
