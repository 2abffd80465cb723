"""Item rules: who may see and change what (API.md section 6). Never commits."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.sessions import SessionUser
from app.db import utcnow
from app.errors import AppError, ErrorCode
from app.items import repository
from app.items.schemas import ItemCreate, ItemSort, ItemUpdate
from app.live.publish import item_changed, snapshot
from app.models import Item

MAX_ID = 2**31 - 1


async def list_items(
    session: AsyncSession,
    viewer: SessionUser | None,
    *,
    q: str | None,
    sort: ItemSort,
    limit: int,
    offset: int,
) -> tuple[list[Item], int]:
    visibility = repository.visible_to(viewer.id if viewer else None, bool(viewer and viewer.is_superuser))
    return await repository.list_visible(session, visibility, q=q, sort=sort, limit=limit, offset=offset)


async def _existing(session: AsyncSession, item_id: int) -> Item:
    item = await repository.get(session, item_id) if 1 <= item_id <= MAX_ID else None
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
    item_changed(session, "item.created", created)  # live updates, after the commit
    return created


async def update_item(session: AsyncSession, item_id: int, data: ItemUpdate, user: SessionUser) -> Item:
    item = await _existing(session, item_id)
    if not _may_change(item, user):
        raise AppError(ErrorCode.FORBIDDEN, "Only the owner or an admin may change this item.")
    changes = data.changes()
    if not changes:
        return item
    before = snapshot(item)  # live updates: who could see it before decides who loses it
    updated = await repository.update(session, item, changes)
    item_changed(session, "item.updated", updated, previous=before)
    return updated


async def delete_item(session: AsyncSession, item_id: int, user: SessionUser) -> None:
    item = await _existing(session, item_id)
    if not _may_change(item, user):
        raise AppError(ErrorCode.FORBIDDEN, "Only the owner or an admin may delete this item.")
    item_changed(session, "item.deleted", item)  # live updates, after the commit
    await repository.delete(session, item)
