"""Item rules: who may see and change what (API.md section 6). Never commits."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import SessionUser
from app.db import get_row, utcnow
from app.errors import AppError, ErrorCode, invalid_query
from app.items import repository
from app.items.cursor import Cursors
from app.items.schemas import ItemCreate, ItemRead, ItemSort, ItemUpdate
from app.live.publish import announce
from app.models import Item


def payload(item: Item) -> dict[str, Any]:
    """The item as the API shows it, for the live updates (app/live)."""
    return ItemRead.model_validate(item).model_dump(mode="json")


@dataclass(frozen=True, slots=True)
class Listing:
    items: list[RowMapping]  # rows of the item table, as the page shows them
    total: int
    total_capped: bool
    next_cursor: str | None


async def list_items(
    session: AsyncSession,
    viewer: SessionUser | None,
    cursors: Cursors,
    *,
    q: str | None,
    sort: ItemSort,
    limit: int,
    offset: int | None,
    cursor: str | None,
) -> Listing:
    """A page by `offset` or, from a `cursor` of the previous page, by keyset (422 for a
    cursor that is not this listing's, or one sent with an offset)."""
    if cursor is not None and offset is not None:
        raise invalid_query("offset", "cursor and offset exclude each other")
    after = cursors.read(cursor, sort, q) if cursor is not None else None
    who = repository.Viewer(viewer.id if viewer else None, bool(viewer and viewer.is_superuser))
    rows, total, capped = await repository.list_visible(
        session, who, q=q, sort=sort, limit=limit, offset=None if after else (offset or 0), after=after
    )
    more = len(rows) > limit
    items = rows[:limit]
    return Listing(items, total, capped, cursors.after(items[-1], sort, q) if more else None)


async def _existing(session: AsyncSession, item_id: int) -> Item:
    item = await get_row(session, Item, item_id)
    if item is None:
        raise AppError(ErrorCode.NOT_FOUND, "Item not found.")
    return item


def _may_change(item: Item, user: SessionUser) -> bool:
    return item.owner_id == user.id or user.is_superuser


async def get_item(session: AsyncSession, item_id: int, viewer: SessionUser | None) -> Item:
    item = await _existing(session, item_id)
    if item.is_private and (viewer is None or not _may_change(item, viewer)):
        raise AppError(ErrorCode.FORBIDDEN, "This item is private.")
    return item


async def create_item(session: AsyncSession, data: ItemCreate, owner: SessionUser) -> Item:
    now = utcnow()  # one instant: a new item's updated_at equals its created_at
    item = Item(
        title=data.title,
        description=data.description,
        is_private=data.is_private,
        owner_id=owner.id,
        created_at=now,
        updated_at=now,
    )
    created = await repository.add(session, item)
    announce(session, "item.created", lambda: payload(created))  # live updates, after the commit
    return created


async def update_item(session: AsyncSession, item_id: int, data: ItemUpdate, user: SessionUser) -> Item:
    item = await _existing(session, item_id)
    if not _may_change(item, user):
        raise AppError(ErrorCode.FORBIDDEN, "Only the owner or an admin may change this item.")
    changes = data.changes()
    if not changes:
        return item
    before = payload(item)  # live updates: who could see it before decides who loses it
    updated = await repository.update(session, item, changes)
    announce(session, "item.updated", lambda: payload(updated), previous=before)
    return updated


async def delete_item(session: AsyncSession, item_id: int, user: SessionUser) -> None:
    item = await _existing(session, item_id)
    if not _may_change(item, user):
        raise AppError(ErrorCode.FORBIDDEN, "Only the owner or an admin may delete this item.")
    # Read now, while it is still a loaded object; published after the commit.
    announce(session, "item.deleted", payload(item))
    await repository.delete(session, item)


async def owned_items(session: AsyncSession, owner_id: int) -> list[Item]:
    return await repository.owned_by(session, owner_id)


async def forget_owner(session: AsyncSession, owner_id: int) -> None:
    """Before a user is deleted: the database's ON DELETE CASCADE removes their items where
    the ORM cannot see it, so announce each, for open pages to drop them (after the commit)."""
    for item in await repository.owned_by(session, owner_id):
        announce(session, "item.deleted", payload(item))
