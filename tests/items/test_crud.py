"""Creating, changing and deleting items (API.md section 6), with the error envelope of section 1."""

from typing import Any

import pytest

from tests.fixtures.client import unique
from tests.items.helpers import (
    ITEMS,
    NO_SUCH_IDS,
    assert_error,
    assert_item_shape,
    create_item,
    list_items,
    read_item,
)

# --- POST /items ---------------------------------------------------------------------------------


async def test_create_returns_201_with_every_item_field(user):
    owner, account = user
    title = unique("create ")

    response = await owner.post(
        ITEMS, json={"title": title, "description": "some words", "is_private": False}
    )

    assert response.status_code == 201, response.text
    item = response.json()
    assert_item_shape(item)
    assert item["title"] == title
    assert item["description"] == "some words"
    assert item["is_private"] is False
    assert item["owner_id"] == account.id


async def test_created_item_reads_back_identically(user):
    owner, _ = user
    item = await create_item(owner, unique("roundtrip "), description="body", is_private=True)

    assert await read_item(owner, item["id"]) == item


async def test_create_defaults_to_public_with_empty_description(user, client):
    owner, _ = user

    item = await create_item(owner, unique("defaults "))

    assert item["is_private"] is False
    assert item["description"] == ""
    assert await read_item(client, item["id"]) == item


async def test_create_with_is_private_true_makes_a_private_item(user, client):
    owner, _ = user

    item = await create_item(owner, unique("private "), is_private=True)

    assert item["is_private"] is True
    assert_error(await client.get(f"{ITEMS}/{item['id']}"), 403, "forbidden")


async def test_create_accepts_private_as_an_alias_of_is_private(user, client):
    owner, _ = user

    item = await create_item(owner, unique("alias "), private=True)

    assert item["is_private"] is True
    assert_error(await client.get(f"{ITEMS}/{item['id']}"), 403, "forbidden")


async def test_each_created_item_gets_a_new_id(user):
    owner, _ = user

    first = await create_item(owner, unique("first "))
    second = await create_item(owner, unique("second "))

    assert first["id"] != second["id"]


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"owner_id": 1}, id="owner_id"),
        pytest.param({"id": 1}, id="id"),
        pytest.param({"created_at": "2000-01-01T00:00:00Z"}, id="created_at"),
        pytest.param({"colour": "red"}, id="made_up"),
    ],
)
async def test_create_rejects_unknown_fields_and_creates_nothing(user, extra):
    owner, _ = user
    marker = unique("unknown")

    response = await owner.post(ITEMS, json={"title": marker, **extra})

    assert_error(response, 422, "validation_error")
    assert (await list_items(owner, q=marker))["total"] == 0


@pytest.mark.parametrize(
    "title",
    [
        pytest.param("x", id="1_char"),
        pytest.param("t" * 200, id="200_chars"),
        pytest.param("Grüße, 世界 ✓", id="unicode"),
    ],
)
async def test_create_accepts_titles_of_1_to_200_characters(user, title):
    owner, _ = user

    item = await create_item(owner, title)

    assert item["title"] == title


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"description": "{marker}"}, id="missing_title"),
        pytest.param({"title": "", "description": "{marker}"}, id="empty_title"),
        pytest.param({"title": "   ", "description": "{marker}"}, id="whitespace_title"),
        pytest.param({"title": "\t\n ", "description": "{marker}"}, id="blank_title"),
        pytest.param({"title": None, "description": "{marker}"}, id="null_title"),
        pytest.param({"title": 123, "description": "{marker}"}, id="number_title"),
        pytest.param({"title": ["a"], "description": "{marker}"}, id="list_title"),
        pytest.param({"title": "{marker}", "description": "d" * 10001}, id="10001_char_description"),
        pytest.param({"title": "{marker}", "description": 5}, id="number_description"),
        pytest.param({"title": "{marker}", "is_private": "sometimes"}, id="non_boolean_is_private"),
        pytest.param({"title": "{marker}", "private": [True]}, id="non_boolean_private"),
    ],
)
async def test_create_rejects_invalid_fields_and_creates_nothing(user, body):
    owner, _ = user
    marker = unique("invalid")
    body = {
        key: value.replace("{marker}", marker) if isinstance(value, str) else value
        for key, value in body.items()
    }

    assert_error(await owner.post(ITEMS, json=body), 422, "validation_error")

    assert (await list_items(owner, q=marker))["total"] == 0


async def test_create_rejects_a_201_character_title_and_creates_nothing(user):
    owner, _ = user
    marker = unique("long")
    title = marker + "t" * (201 - len(marker))
    assert len(title) == 201

    assert_error(await owner.post(ITEMS, json={"title": title}), 422, "validation_error")

    assert (await list_items(owner, q=marker))["total"] == 0


@pytest.mark.parametrize("body", [[{"title": "a list"}], "a string", 42])
async def test_create_rejects_a_body_that_is_not_an_object(user, body):
    owner, _ = user

    assert_error(await owner.post(ITEMS, json=body), 422, "validation_error")


async def test_create_rejects_malformed_json(user):
    owner, _ = user

    response = await owner.post(ITEMS, content=b'{"title": ', headers={"Content-Type": "application/json"})

    assert_error(response, 422, "validation_error")


async def test_create_accepts_descriptions_up_to_10000_characters(user):
    owner, _ = user

    item = await create_item(owner, unique("long "), description="d" * 10000)

    assert item["description"] == "d" * 10000


async def test_validation_error_details_do_not_echo_the_input(user):
    owner, _ = user
    secret = unique("do-not-echo-") * 20

    error = assert_error(await owner.post(ITEMS, json={"title": secret}), 422, "validation_error")

    assert secret not in str(error)
    assert any("title" in entry["loc"] for entry in error["details"])


async def test_anonymous_caller_cannot_create(client):
    marker = unique("anon")

    assert_error(await client.post(ITEMS, json={"title": marker}), 401, "not_authenticated")
    assert (await list_items(client, q=marker))["total"] == 0


# --- PUT /items/{id} -----------------------------------------------------------------------------


async def put(client, item_id: int, body: Any):
    return await client.put(f"{ITEMS}/{item_id}", json=body)


async def test_update_changes_every_field_sent(user):
    owner, account = user
    item = await create_item(owner, unique("before "), description="old")
    title = unique("after ")

    response = await put(owner, item["id"], {"title": title, "description": "new", "is_private": True})

    assert response.status_code == 200, response.text
    updated = response.json()
    assert_item_shape(updated)
    assert updated["id"] == item["id"]
    assert updated["title"] == title
    assert updated["description"] == "new"
    assert updated["is_private"] is True
    assert updated["owner_id"] == account.id
    assert updated["created_at"] == item["created_at"]
    assert await read_item(owner, item["id"]) == updated


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"title": "renamed"}, "title", id="title"),
        pytest.param({"description": "rewritten"}, "description", id="description"),
        pytest.param({"description": ""}, "description", id="empty_description"),
        pytest.param({"is_private": True}, "is_private", id="is_private"),
    ],
)
async def test_partial_update_changes_only_the_field_sent(user, change, field):
    owner, _ = user
    item = await create_item(owner, unique("partial "), description="kept", is_private=False)

    response = await put(owner, item["id"], change)

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated[field] == change[field]
    for key in ("id", "title", "description", "is_private", "owner_id", "created_at"):
        if key != field:
            assert updated[key] == item[key], key
    assert await read_item(owner, item["id"]) == updated


async def test_update_accepts_private_as_an_alias_of_is_private(user, client):
    owner, _ = user
    item = await create_item(owner, unique("alias "))

    response = await put(owner, item["id"], {"private": True})

    assert response.status_code == 200, response.text
    assert response.json()["is_private"] is True
    assert_error(await client.get(f"{ITEMS}/{item['id']}"), 403, "forbidden")

    response = await put(owner, item["id"], {"private": False})

    assert response.status_code == 200, response.text
    assert response.json()["is_private"] is False
    assert (await read_item(client, item["id"]))["is_private"] is False


async def test_update_with_empty_body_changes_nothing(user):
    owner, _ = user
    item = await create_item(owner, unique("same "), description="d", is_private=True)

    response = await put(owner, item["id"], {})

    assert response.status_code == 200, response.text
    assert response.json() == item
    assert await read_item(owner, item["id"]) == item


async def test_other_user_cannot_update_a_public_item_and_it_stays_unchanged(user, other_user):
    owner, _ = user
    other, _ = other_user
    item = await create_item(owner, unique("mine "))

    assert_error(await put(other, item["id"], {"title": "stolen"}), 403, "forbidden")

    assert await read_item(owner, item["id"]) == item


async def test_other_user_cannot_update_a_private_item_and_it_stays_unchanged(user, other_user):
    owner, _ = user
    other, _ = other_user
    item = await create_item(owner, unique("mine "), is_private=True)

    assert_error(await put(other, item["id"], {"is_private": False}), 403, "forbidden")

    assert await read_item(owner, item["id"]) == item


async def test_admin_may_update_someone_elses_item_and_ownership_is_kept(user, admin):
    owner, account = user
    admin_client, _ = admin
    item = await create_item(owner, unique("moderated "), is_private=True)

    response = await put(admin_client, item["id"], {"title": "moderated", "is_private": False})

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["title"] == "moderated"
    assert updated["is_private"] is False
    assert updated["owner_id"] == account.id
    assert await read_item(owner, item["id"]) == updated


@pytest.mark.parametrize("item_id", NO_SUCH_IDS)
async def test_update_of_unknown_or_out_of_range_id_is_not_found(user, item_id):
    owner, _ = user

    assert_error(await owner.put(f"{ITEMS}/{item_id}", json={"title": "x"}), 404, "not_found")


async def test_update_of_deleted_item_is_not_found(user):
    owner, _ = user
    item = await create_item(owner, unique("gone "))
    assert (await owner.delete(f"{ITEMS}/{item['id']}")).status_code == 204

    assert_error(await put(owner, item["id"], {"title": "x"}), 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"title": ""}, id="empty_title"),
        pytest.param({"title": "   "}, id="whitespace_title"),
        pytest.param({"title": "t" * 201}, id="201_char_title"),
        pytest.param({"title": 7}, id="number_title"),
        pytest.param({"description": "d" * 10001}, id="10001_char_description"),
        pytest.param({"is_private": "sometimes"}, id="non_boolean_is_private"),
        pytest.param({"title": None}, id="null_title"),
        pytest.param({"description": None}, id="null_description"),
        pytest.param({"is_private": None}, id="null_is_private"),
        pytest.param({"private": None}, id="null_private"),
        pytest.param({"title": "fine", "description": None}, id="valid_field_with_a_null"),
        pytest.param({"owner_id": 1}, id="owner_id"),
        pytest.param({"id": 1}, id="id"),
        pytest.param({"title": "fine", "created_at": "2000-01-01T00:00:00Z"}, id="valid_field_with_unknown"),
        pytest.param(["title"], id="not_an_object"),
    ],
)
async def test_update_rejects_invalid_fields_and_leaves_the_item_unchanged(user, body):
    owner, _ = user
    item = await create_item(owner, unique("steady "), description="d", is_private=True)

    assert_error(await put(owner, item["id"], body), 422, "validation_error")

    assert await read_item(owner, item["id"]) == item


async def test_update_cannot_hand_an_item_to_another_user(user, other_user):
    owner, account = user
    other, other_account = other_user
    item = await create_item(owner, unique("keep "))

    assert_error(await put(owner, item["id"], {"owner_id": other_account.id}), 422, "validation_error")

    assert (await read_item(other, item["id"]))["owner_id"] == account.id


async def test_anonymous_caller_cannot_update(client, user):
    owner, _ = user
    item = await create_item(owner, unique("anon "))

    assert_error(await put(client, item["id"], {"title": "defaced"}), 401, "not_authenticated")

    assert await read_item(owner, item["id"]) == item


# --- DELETE /items/{id} --------------------------------------------------------------------------


async def test_owner_deletes_with_204_and_the_item_is_gone(user, client):
    owner, _ = user
    marker = unique("delete")
    item = await create_item(owner, marker, is_private=True)

    response = await owner.delete(f"{ITEMS}/{item['id']}")

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_error(await owner.get(f"{ITEMS}/{item['id']}"), 404, "not_found")
    assert_error(await client.get(f"{ITEMS}/{item['id']}"), 404, "not_found")
    assert (await list_items(owner, q=marker))["total"] == 0


async def test_delete_twice_is_not_found_the_second_time(user):
    owner, _ = user
    item = await create_item(owner, unique("twice "))
    assert (await owner.delete(f"{ITEMS}/{item['id']}")).status_code == 204

    assert_error(await owner.delete(f"{ITEMS}/{item['id']}"), 404, "not_found")


@pytest.mark.parametrize("is_private", [False, True])
async def test_other_user_cannot_delete_and_the_item_remains(user, other_user, is_private):
    owner, _ = user
    other, _ = other_user
    marker = unique("stay")
    item = await create_item(owner, marker, is_private=is_private)

    assert_error(await other.delete(f"{ITEMS}/{item['id']}"), 403, "forbidden")

    assert await read_item(owner, item["id"]) == item
    assert (await list_items(owner, q=marker))["total"] == 1


async def test_admin_may_delete_someone_elses_item(user, admin):
    owner, _ = user
    admin_client, _ = admin
    item = await create_item(owner, unique("removed "), is_private=True)

    response = await admin_client.delete(f"{ITEMS}/{item['id']}")

    assert response.status_code == 204, response.text
    assert_error(await owner.get(f"{ITEMS}/{item['id']}"), 404, "not_found")


@pytest.mark.parametrize("item_id", NO_SUCH_IDS)
async def test_delete_of_unknown_or_out_of_range_id_is_not_found(user, item_id):
    owner, _ = user

    assert_error(await owner.delete(f"{ITEMS}/{item_id}"), 404, "not_found")


async def test_anonymous_caller_cannot_delete_and_the_item_remains(client, user):
    owner, _ = user
    item = await create_item(owner, unique("anon "))

    assert_error(await client.delete(f"{ITEMS}/{item['id']}"), 401, "not_authenticated")

    assert await read_item(owner, item["id"]) == item


# --- Routing errors ------------------------------------------------------------------------------


async def test_unsupported_method_on_an_item_is_405_in_the_envelope(user):
    owner, _ = user
    item = await create_item(owner, unique("patch "))

    assert_error(await owner.patch(f"{ITEMS}/{item['id']}", json={"title": "x"}), 405, "method_not_allowed")
    assert await read_item(owner, item["id"]) == item


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_non_integer_id_on_write_is_a_validation_error(user, method):
    owner, _ = user

    assert_error(await owner.request(method, f"{ITEMS}/abc", json={}), 422, "validation_error")
