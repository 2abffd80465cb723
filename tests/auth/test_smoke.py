from tests.fixtures.client import API


async def test_me_returns_the_logged_in_user(user):
    client, account = user
    response = await client.get(f"{API}/users/me")
    assert response.status_code == 200
    assert response.json()["username"] == account.username
