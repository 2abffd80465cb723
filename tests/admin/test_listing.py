"""API.md section 5: GET /admin/users, filtered by a marker of our own because the database is shared."""

import pytest

from tests.admin.helpers import ADMIN_USERS, assert_error, assert_user
from tests.fixtures.client import register, unique


async def listing(admin_client, **params):
    response = await admin_client.get(ADMIN_USERS, params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"items", "total", "limit", "offset"}, page
    for item in page["items"]:
        assert_user(item)
    return page


def ids(page) -> list[int]:
    return [item["id"] for item in page["items"]]


@pytest.fixture
async def marked(admin, make_client):
    """Four users whose usernames share a fresh marker, the last one deactivated."""
    admin_client, _ = admin
    marker = unique("mk")
    accounts = [await register(make_client(), username=f"{marker}{n}") for n in range(4)]
    response = await admin_client.patch(f"{ADMIN_USERS}/{accounts[-1].id}", json={"is_active": False})
    assert response.status_code == 200, response.text
    return marker, [a.id for a in accounts]


async def test_q_matches_usernames_with_an_exact_total_in_id_order(admin, marked):
    admin_client, _ = admin
    marker, user_ids = marked
    page = await listing(admin_client, q=marker)
    assert page["total"] == 4
    assert (page["limit"], page["offset"]) == (20, 0)
    assert ids(page) == sorted(user_ids)
    assert page["items"][0]["username"] == f"{marker}0"


async def test_q_is_case_insensitive_and_matches_emails(admin, make_client):
    admin_client, _ = admin
    marker = unique("em")
    account = await register(make_client(), username=unique(), email=f"{marker}@example.com")
    assert ids(await listing(admin_client, q=marker.upper())) == [account.id]
    assert ids(await listing(admin_client, q=f"{marker}@EXAMPLE.com")) == [account.id]
    assert ids(await listing(admin_client, q=account.username.upper())) == [account.id]


async def test_limit_and_offset_page_through_the_same_total(admin, marked):
    admin_client, _ = admin
    marker, user_ids = marked
    first = await listing(admin_client, q=marker, limit=3, offset=0)
    second = await listing(admin_client, q=marker, limit=3, offset=3)
    beyond = await listing(admin_client, q=marker, limit=3, offset=10)
    assert (first["total"], second["total"], beyond["total"]) == (4, 4, 4)
    assert (first["limit"], second["offset"]) == (3, 3)
    assert ids(first) + ids(second) == sorted(user_ids)
    assert ids(beyond) == []


async def test_is_active_filters_and_counts(admin, marked):
    admin_client, _ = admin
    marker, user_ids = marked
    inactive = await listing(admin_client, q=marker, is_active="false")
    active = await listing(admin_client, q=marker, is_active="true")
    assert (inactive["total"], ids(inactive)) == (1, [user_ids[-1]])
    assert inactive["items"][0]["is_active"] is False
    assert (active["total"], ids(active)) == (3, sorted(user_ids[:-1]))


async def test_like_wildcards_in_q_match_literally(admin, make_client):
    admin_client, _ = admin
    marker = unique("lk")
    underscore = await register(make_client(), username=f"{marker}_x")
    await register(make_client(), username=f"{marker}ax")
    assert ids(await listing(admin_client, q=f"{marker}_")) == [underscore.id]
    assert (await listing(admin_client, q=f"{marker}%"))["total"] == 0
    assert (await listing(admin_client, q=f"{marker}\\"))["total"] == 0


async def test_without_q_every_user_is_counted(admin):
    admin_client, account = admin
    page = await listing(admin_client, limit=1)
    assert page["total"] >= 1
    assert len(page["items"]) == 1
    assert page["items"][0]["id"] <= account.id  # ordered by id


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
        {"offset": -1},
        {"offset": 2**31},
        {"is_active": "maybe"},
        {"q": "x" * 321},
    ],
)
async def test_bad_query_parameters_are_422(admin, params):
    admin_client, _ = admin
    assert_error(await admin_client.get(ADMIN_USERS, params=params), 422, "validation_error")


async def test_limit_100_is_allowed(admin):
    admin_client, _ = admin
    assert (await listing(admin_client, limit=100))["limit"] == 100
