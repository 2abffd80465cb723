"""GET /items (API.md section 6): paging, search, sort, and validation of the query."""

from datetime import UTC, datetime, timedelta

import pytest

from app.db import SESSIONMAKER
from app.models import Item
from app.state import state_of
from tests.fixtures.client import unique
from tests.items.helpers import ITEMS, assert_error, create_item, ids, list_items

SORTS = ["created_at", "-created_at", "title", "-title", "id", "-id"]

# --- limit and offset ----------------------------------------------------------------------------


async def test_defaults_are_limit_20_and_offset_0_and_are_echoed(user):
    owner, _ = user
    marker = unique("page")
    created = [await create_item(owner, f"{marker} {n:02d}") for n in range(21)]

    page = await list_items(owner, q=marker)

    assert page["limit"] == 20
    assert page["offset"] == 0
    assert page["total"] == 21
    assert len(page["items"]) == 20
    assert set(ids(page)) <= {item["id"] for item in created}


@pytest.mark.parametrize("limit", [1, 2, 100])
async def test_limit_in_range_caps_the_page_and_is_echoed(user, limit):
    owner, _ = user
    marker = unique("limit")
    for n in range(3):
        await create_item(owner, f"{marker} {n}")

    page = await list_items(owner, q=marker, limit=limit)

    assert page["limit"] == limit
    assert len(page["items"]) == min(limit, 3)
    assert page["total"] == 3


@pytest.mark.parametrize("limit", ["0", "101", "-1", "1000", "ten", "1.5"])
async def test_limit_out_of_range_or_not_an_integer_is_a_validation_error(client, limit):
    error = assert_error(await client.get(ITEMS, params={"limit": limit}), 422, "validation_error")

    assert any("limit" in entry["loc"] for entry in error["details"])


@pytest.mark.parametrize("offset", ["-1", "two"])
async def test_offset_negative_or_not_an_integer_is_a_validation_error(client, offset):
    assert_error(await client.get(ITEMS, params={"offset": offset}), 422, "validation_error")


@pytest.mark.parametrize("offset", [str(2**31), str(2**63), "99999999999999999999"])
async def test_huge_offset_is_never_a_server_error(client, offset):
    response = await client.get(ITEMS, params={"offset": offset})

    if response.status_code == 200:
        assert response.json()["items"] == []
    else:
        assert_error(response, 422, "validation_error")


async def test_offset_pages_through_the_list_without_gaps_or_repeats(user):
    owner, _ = user
    marker = unique("offset")
    created = [await create_item(owner, f"{marker} {n}") for n in range(5)]

    pages = [await list_items(owner, q=marker, sort="id", limit=2, offset=offset) for offset in (0, 2, 4)]

    assert [page["offset"] for page in pages] == [0, 2, 4]
    assert [page["total"] for page in pages] == [5, 5, 5]
    assert [ids(page) for page in pages] == [
        [created[0]["id"], created[1]["id"]],
        [created[2]["id"], created[3]["id"]],
        [created[4]["id"]],
    ]


async def test_offset_past_the_end_gives_an_empty_page_with_the_full_total(user):
    owner, _ = user
    marker = unique("past")
    for n in range(2):
        await create_item(owner, f"{marker} {n}")

    page = await list_items(owner, q=marker, offset=5)

    assert page["items"] == []
    assert page["total"] == 2
    assert page["offset"] == 5


async def test_total_counts_matches_beyond_the_page_for_every_caller(user, client):
    owner, _ = user
    marker = unique("total")
    for n in range(3):
        await create_item(owner, f"{marker} public {n}")
    await create_item(owner, f"{marker} private", is_private=True)

    assert (await list_items(client, q=marker, limit=1))["total"] == 3
    assert (await list_items(owner, q=marker, limit=1))["total"] == 4


# --- q -------------------------------------------------------------------------------------------


async def test_q_matches_title_or_description_case_insensitively(user):
    owner, _ = user
    marker = unique("search")
    in_title = await create_item(owner, f"Title {marker.upper()} here")
    in_description = await create_item(owner, unique("other "), description=f"about {marker} things")
    await create_item(owner, unique("unrelated "), description="nothing to see")

    page = await list_items(owner, q=marker.capitalize(), sort="id")

    assert ids(page) == [in_title["id"], in_description["id"]]
    assert page["total"] == 2


async def test_q_matches_a_substring_in_the_middle_of_a_word(user):
    owner, _ = user
    marker = unique("mid")
    item = await create_item(owner, f"prefix{marker}suffix")

    page = await list_items(owner, q=marker[2:-2])

    assert item["id"] in ids(page)


async def test_q_is_case_insensitive_beyond_ascii(user):
    owner, _ = user
    marker = unique("uni")
    item = await create_item(owner, f"{marker} ÉCOLE ÄRGER")

    page = await list_items(owner, q=f"{marker} école ärger")

    assert ids(page) == [item["id"]]


async def test_empty_q_filters_nothing(user):
    owner, _ = user
    await create_item(owner, unique("any "))

    unfiltered = await list_items(owner)
    empty_q = await list_items(owner, q="")

    assert empty_q["total"] == unfiltered["total"] >= 1
    assert ids(empty_q) == ids(unfiltered)


async def test_q_with_no_match_gives_an_empty_page(client):
    page = await list_items(client, q=unique("nomatch"))

    assert page["items"] == []
    assert page["total"] == 0


@pytest.mark.parametrize(
    ("literal", "decoy"),
    [
        pytest.param("%", "x", id="percent"),
        pytest.param("_", "x", id="underscore"),
        pytest.param("%%", "xx", id="double_percent"),
        pytest.param("\\", "x", id="backslash"),
        pytest.param("\\%", "\\x", id="escaped_percent"),
    ],
)
async def test_q_treats_like_wildcards_literally(user, literal, decoy):
    owner, _ = user
    marker = unique("wild")
    exact = await create_item(owner, f"{marker}{literal}end")
    await create_item(owner, f"{marker}{decoy}end")
    await create_item(owner, f"{marker}end")

    page = await list_items(owner, q=f"{marker}{literal}end")

    assert ids(page) == [exact["id"]]
    assert page["total"] == 1


async def test_q_of_only_a_wildcard_does_not_match_everything(user):
    owner, _ = user
    marker = unique("pct")
    await create_item(owner, f"{marker} plain")

    for q in ("%", "_"):
        page = await list_items(owner, q=f"{marker}{q}")
        assert page["total"] == 0, q


# --- sort ----------------------------------------------------------------------------------------


async def make_sortable(owner, app, marker: str) -> dict[str, list[int]]:
    """Three items whose id, title and created_at orders all differ; returns the expected ids per sort."""
    # Creation (id) order c, a, b; created_at order b, c, a (set in the database, as a migration might).
    c = await create_item(owner, f"{marker}-c")
    a = await create_item(owner, f"{marker}-a")
    b = await create_item(owner, f"{marker}-b")
    base = datetime(2020, 1, 1, tzinfo=UTC)
    async with state_of(app)[SESSIONMAKER]() as session:
        for item, minutes in ((b, 0), (c, 1), (a, 2)):
            row = await session.get(Item, item["id"])
            assert row is not None
            row.created_at = base + timedelta(minutes=minutes)
        await session.commit()
    by_id = [c["id"], a["id"], b["id"]]
    by_title = [a["id"], b["id"], c["id"]]
    by_created = [b["id"], c["id"], a["id"]]
    return {
        "id": by_id,
        "-id": by_id[::-1],
        "title": by_title,
        "-title": by_title[::-1],
        "created_at": by_created,
        "-created_at": by_created[::-1],
    }


@pytest.mark.parametrize("sort", SORTS)
async def test_sort_orders_the_list_by_that_key(user, app, sort):
    owner, _ = user
    marker = unique("sort")
    expected = await make_sortable(owner, app, marker)

    page = await list_items(owner, q=marker, sort=sort)

    assert ids(page) == expected[sort]
    assert page["total"] == 3


async def test_default_sort_is_newest_first(user, app):
    owner, _ = user
    marker = unique("sort")
    expected = await make_sortable(owner, app, marker)

    page = await list_items(owner, q=marker)

    assert ids(page) == expected["-created_at"]


async def test_sort_without_created_at_override_follows_creation_order(user):
    owner, _ = user
    marker = unique("order")
    created = [await create_item(owner, f"{marker} {n}") for n in range(3)]

    oldest_first = await list_items(owner, q=marker, sort="created_at")
    newest_first = await list_items(owner, q=marker)

    assert ids(oldest_first) == [item["id"] for item in created]
    assert ids(newest_first) == [item["id"] for item in reversed(created)]


async def test_sort_is_applied_before_paging(user, app):
    owner, _ = user
    marker = unique("sortpage")
    expected = await make_sortable(owner, app, marker)

    for sort in SORTS:
        first = await list_items(owner, q=marker, sort=sort, limit=2)
        rest = await list_items(owner, q=marker, sort=sort, limit=2, offset=2)
        assert ids(first) + ids(rest) == expected[sort], sort


@pytest.mark.parametrize("sort", ["unknown", "owner_id", "+title", "TITLE", "--id", "title,id"])
async def test_unknown_sort_is_a_validation_error(client, sort):
    error = assert_error(await client.get(ITEMS, params={"sort": sort}), 422, "validation_error")

    assert any("sort" in entry["loc"] for entry in error["details"])
