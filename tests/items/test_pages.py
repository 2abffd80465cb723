"""Keyset pages and the capped total (API.md section 6): cursors walk every sort without
skipping or repeating an item, ties included; a cursor is tamper-evident and bound to its
listing; past 10,000 matches the total says so; and no index path shows a private item to
anyone but its owner and admins. Rows are seeded by SQL where a test needs many."""

import pytest
from sqlalchemy import text

from app.db import SESSIONMAKER
from app.state import state_of
from tests.fixtures.client import login, register, unique
from tests.items.helpers import ITEMS, assert_error, create_item, ids, list_items

SORTS = ["created_at", "-created_at", "title", "-title", "id", "-id"]


async def seed(
    app, owner_id: int, marker: str, count: int, *, private_every: int = 0, same_time: bool = True
) -> None:
    """`count` items titled `<marker> <n % 3>` (equal titles), all created at one instant
    when `same_time` (equal timestamps), every `private_every`-th private."""
    created = "TIMESTAMPTZ '2001-02-03 04:05:06+00'" if same_time else "clock_timestamp()"
    private = f"(n % {private_every} = 0)" if private_every else "false"
    statement = text(
        f"INSERT INTO item (title, description, is_private, owner_id, created_at, updated_at) "  # noqa: S608
        f"SELECT :marker || ' ' || (n % 3), 'seeded', {private}, :owner, {created}, {created} "
        "FROM generate_series(1, :count) AS n"
    )
    async with state_of(app)[SESSIONMAKER]() as session:
        # A seed is not a request: the app's statement_timeout (DB_STATEMENT_TIMEOUT_MS) is
        # for those, and 10,000 rows through the trigram indexes can take longer on a busy
        # machine.
        await session.execute(text("SET LOCAL statement_timeout = 0"))
        await session.execute(statement, {"marker": marker, "owner": owner_id, "count": count})
        await session.commit()


async def walk(client, **params) -> list[int]:
    """Every page by cursor; the ids in order."""
    seen: list[int] = []
    page = await list_items(client, **params)
    seen += ids(page)
    while page["next_cursor"] is not None:
        page = await list_items(client, cursor=page["next_cursor"], **params)
        assert page["offset"] is None
        seen += ids(page)
    return seen


@pytest.mark.parametrize("sort", SORTS)
async def test_cursors_walk_every_sort_without_skips_or_repeats_through_ties(app, user, sort):
    owner, account = user
    marker = unique("walk")
    await seed(app, account.id, marker, 23, private_every=4)  # equal titles and timestamps
    by_offset = ids(await list_items(owner, q=marker, sort=sort, limit=100))
    assert len(by_offset) == 23
    assert await walk(owner, q=marker, sort=sort, limit=4) == by_offset


async def test_the_last_page_has_no_cursor_and_the_first_says_offset_0(user):
    owner, _ = user
    marker = unique("last")
    for n in range(3):
        await create_item(owner, f"{marker} {n}")
    first = await list_items(owner, q=marker, limit=2)
    assert first["offset"] == 0
    assert first["next_cursor"]
    second = await list_items(owner, q=marker, limit=2, cursor=first["next_cursor"])
    assert len(second["items"]) == 1
    assert second["next_cursor"] is None
    assert second["total"] == 3


async def test_a_new_item_does_not_shift_a_walk_in_progress(user):
    owner, _ = user
    marker = unique("shift")
    made = [await create_item(owner, f"{marker} {n}") for n in range(4)]
    first = await list_items(owner, q=marker, limit=2, sort="-id")
    await create_item(owner, f"{marker} new")  # lands before the cursor: not repeated, not skipped
    second = await list_items(owner, q=marker, limit=2, sort="-id", cursor=first["next_cursor"])
    assert ids(first) + ids(second) == [item["id"] for item in reversed(made)]


def _flip_in_signature(cursor: str) -> str:
    """One character in the middle of the signature changed: the last one of a base64 text
    may carry only padding bits, and changing it can leave the bytes as they were."""
    payload, signature = cursor.rsplit(".", 1)
    middle = len(signature) // 2
    other = "A" if signature[middle] != "A" else "B"
    return f"{payload}.{signature[:middle]}{other}{signature[middle + 1 :]}"


@pytest.mark.parametrize(
    "mangle",
    [
        _flip_in_signature,  # a character of the signature changed
        lambda c: ("B" if c[0] != "B" else "C") + c[1:],  # the payload changed
        lambda c: "x" + c,
        lambda c: c.split(".")[0],  # no signature
        lambda _: "not-a-cursor",
        lambda _: "",
    ],
)
async def test_a_tampered_or_malformed_cursor_is_422(user, mangle):
    owner, _ = user
    marker = unique("tamper")
    for n in range(3):
        await create_item(owner, f"{marker} {n}")
    cursor = (await list_items(owner, q=marker, limit=1))["next_cursor"]
    response = await owner.get(ITEMS, params={"q": marker, "limit": 1, "cursor": mangle(cursor)})
    assert_error(response, 422, "validation_error")


async def test_a_cursor_is_bound_to_its_sort_and_q_and_excludes_offset(user):
    owner, _ = user
    marker = unique("bound")
    for n in range(3):
        await create_item(owner, f"{marker} {n}")
    cursor = (await list_items(owner, q=marker, limit=1, sort="title"))["next_cursor"]
    for params in ({"sort": "-title", "q": marker}, {"sort": "title", "q": f"{marker} 1"}):
        assert_error(await owner.get(ITEMS, params={**params, "cursor": cursor}), 422, "validation_error")
    with_offset = {"sort": "title", "q": marker, "cursor": cursor, "offset": 0}
    assert_error(await owner.get(ITEMS, params=with_offset), 422, "validation_error")
    assert_error(await owner.get(ITEMS, params={"cursor": "c" * 2000}), 422, "validation_error")


async def test_total_is_exact_to_10000_and_capped_beyond(app, user):
    owner, account = user
    marker = unique("cap")
    # Private (private_every=1): the other tests' listings never see these 10,005 rows.
    await seed(app, account.id, marker, 10_000, private_every=1, same_time=False)
    exact = await list_items(owner, q=marker, limit=1)
    assert (exact["total"], exact["total_capped"]) == (10_000, False)
    await seed(app, account.id, marker, 5, private_every=1, same_time=False)
    capped = await list_items(owner, q=marker, limit=1)
    assert (capped["total"], capped["total_capped"]) == (10_000, True)


async def _two_users_items(app, make_client):
    """An owner and another user, each with public and private items (12 and 4, half of
    each private), titled with one marker."""
    owner, other, anonymous = make_client(), make_client(), make_client()
    owner_account, other_account = await register(owner), await register(other)
    await login(owner, owner_account)
    await login(other, other_account)
    marker = unique("vis")
    await seed(app, owner_account.id, marker, 12, private_every=2, same_time=False)
    await seed(app, other_account.id, marker, 4, private_every=2, same_time=False)
    return owner, other, anonymous, marker, (owner_account.id, other_account.id)


@pytest.mark.parametrize("sort", SORTS)
async def test_no_index_path_shows_a_private_item_to_another_user(app, make_client, make_admin, sort):
    owner, other, anonymous, marker, _ids = await _two_users_items(app, make_client)
    admin, _ = await make_admin()
    params = {"sort": sort, "limit": 3, "q": marker}
    everything = await walk(admin, **params)
    owner_sees, other_sees, anonymous_sees = [await walk(c, **params) for c in (owner, other, anonymous)]
    assert len(everything) == 16
    assert len(owner_sees) == 16 - 2  # everything but the other's private ones
    assert len(other_sees) == 16 - 6
    assert len(anonymous_sees) == 8
    assert (await list_items(other, **params))["total"] == 10
    assert (await list_items(anonymous, **params))["total"] == 8
    assert set(anonymous_sees) <= set(other_sees) & set(owner_sees)
    for seen in (owner_sees, other_sees, anonymous_sees):
        assert len(set(seen)) == len(seen)  # no repeats through the merged parts
        assert seen == [i for i in everything if i in set(seen)]  # in the listing's order


@pytest.mark.parametrize("sort", ["-created_at", "-id"])
async def test_without_q_the_newest_page_keeps_the_rule_too(app, make_client, make_admin, sort):
    owner, other, anonymous, marker, (owner_id, other_id) = await _two_users_items(app, make_client)
    admin, _ = await make_admin()
    newest = (await list_items(admin, sort=sort, limit=16))["items"]
    assert {item["title"].rsplit(" ", 1)[0] for item in newest} == {marker}  # the seeded ones
    private = {i["id"]: i["owner_id"] for i in newest if i["is_private"]}
    assert len(private) == 8
    # The newest 16 are all seeded: each viewer's first page holds what it may see of them.
    for client, viewer_id in ((owner, owner_id), (other, other_id), (anonymous, None)):
        shown = {i["id"] for i in (await list_items(client, sort=sort, limit=16))["items"]}
        for item_id, item_owner in private.items():
            assert (item_id in shown) == (item_owner == viewer_id), (viewer_id, item_id)
