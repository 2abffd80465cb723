"""Who sees what (API.md section 6): anonymous, owner, other user and admin, for single reads and lists."""

import pytest

from tests.fixtures.client import unique
from tests.items.helpers import ITEMS, NO_SUCH_IDS, assert_error, create_item, ids, list_items, read_item


async def test_public_item_is_readable_by_everyone(client, user, other_user, admin):
    owner, _ = user
    item = await create_item(owner, unique("public "))
    other, _ = other_user
    admin_client, _ = admin

    for caller in (client, owner, other, admin_client):
        assert await read_item(caller, item["id"]) == item


async def test_private_item_is_readable_by_its_owner(user):
    owner, account = user
    item = await create_item(owner, unique("private "), is_private=True)

    read = await read_item(owner, item["id"])

    assert read == item
    assert read["is_private"] is True
    assert read["owner_id"] == account.id


async def test_private_item_of_someone_else_is_forbidden_to_another_user(user, other_user):
    owner, _ = user
    item = await create_item(owner, unique("private "), is_private=True)
    other, _ = other_user

    assert_error(await other.get(f"{ITEMS}/{item['id']}"), 403, "forbidden")


async def test_private_item_is_forbidden_to_anonymous_callers(client, user):
    owner, _ = user
    item = await create_item(owner, unique("private "), is_private=True)

    assert_error(await client.get(f"{ITEMS}/{item['id']}"), 403, "forbidden")


async def test_admin_may_read_any_private_item(user, admin):
    owner, _ = user
    item = await create_item(owner, unique("private "), is_private=True)
    admin_client, _ = admin

    assert await read_item(admin_client, item["id"]) == item


async def test_deleted_item_is_not_found(user):
    owner, _ = user
    item = await create_item(owner, unique("gone "))
    assert (await owner.delete(f"{ITEMS}/{item['id']}")).status_code == 204

    assert_error(await owner.get(f"{ITEMS}/{item['id']}"), 404, "not_found")


@pytest.mark.parametrize("item_id", NO_SUCH_IDS)
async def test_unknown_or_out_of_range_id_is_not_found_for_anonymous_callers(client, item_id):
    assert_error(await client.get(f"{ITEMS}/{item_id}"), 404, "not_found")


@pytest.mark.parametrize("item_id", NO_SUCH_IDS)
async def test_unknown_or_out_of_range_id_is_not_found_for_users(user, item_id):
    owner, _ = user
    assert_error(await owner.get(f"{ITEMS}/{item_id}"), 404, "not_found")


async def test_non_integer_id_is_a_validation_error(client):
    assert_error(await client.get(f"{ITEMS}/not-a-number"), 422, "validation_error")


async def test_private_item_is_hidden_from_other_users_list_and_total(user, other_user):
    owner, _ = user
    marker = unique("vis")
    public = await create_item(owner, f"{marker} public")
    private = await create_item(owner, f"{marker} private", is_private=True)
    other, _ = other_user

    page = await list_items(other, q=marker)

    assert ids(page) == [public["id"]]
    assert private["id"] not in ids(page)
    assert page["total"] == 1


async def test_private_item_is_hidden_from_anonymous_list_and_total(client, user):
    owner, _ = user
    marker = unique("vis")
    public = await create_item(owner, f"{marker} public")
    await create_item(owner, f"{marker} private", is_private=True)

    page = await list_items(client, q=marker)

    assert ids(page) == [public["id"]]
    assert page["total"] == 1


async def test_owner_sees_own_private_items_in_list_and_total(user):
    owner, _ = user
    marker = unique("vis")
    public = await create_item(owner, f"{marker} public")
    private = await create_item(owner, f"{marker} private", is_private=True)

    page = await list_items(owner, q=marker, sort="id")

    assert ids(page) == [public["id"], private["id"]]
    assert page["total"] == 2


async def test_user_sees_others_public_items_but_only_own_private_ones(user, other_user):
    owner, _ = user
    marker = unique("vis")
    theirs_public = await create_item(owner, f"{marker} theirs public")
    await create_item(owner, f"{marker} theirs private", is_private=True)
    other, _ = other_user
    mine_private = await create_item(other, f"{marker} mine private", is_private=True)

    page = await list_items(other, q=marker, sort="id")

    assert ids(page) == [theirs_public["id"], mine_private["id"]]
    assert page["total"] == 2


async def test_admin_sees_every_item_in_list_and_total(user, other_user, admin):
    owner, _ = user
    marker = unique("vis")
    other, _ = other_user
    created = [
        await create_item(owner, f"{marker} a", is_private=True),
        await create_item(owner, f"{marker} b"),
        await create_item(other, f"{marker} c", is_private=True),
    ]
    admin_client, _ = admin

    page = await list_items(admin_client, q=marker, sort="id")

    assert ids(page) == [item["id"] for item in created]
    assert page["total"] == 3


async def test_item_made_private_leaves_other_users_list_and_total(user, client):
    owner, _ = user
    marker = unique("vis")
    item = await create_item(owner, f"{marker} soon private")
    assert (await list_items(client, q=marker))["total"] == 1

    response = await owner.put(f"{ITEMS}/{item['id']}", json={"is_private": True})
    assert response.status_code == 200, response.text

    page = await list_items(client, q=marker)
    assert page["items"] == []
    assert page["total"] == 0
    assert_error(await client.get(f"{ITEMS}/{item['id']}"), 403, "forbidden")
