"""All SQL for items. Visibility is a WHERE clause, so lists and totals agree."""

from typing import Any

from sqlalchemy import ColumnElement, Select, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import contains_pattern
from app.items.schemas import ItemSort
from app.models import Item

_ORDER: dict[ItemSort, tuple[ColumnElement[Any], ...]] = {
    ItemSort.CREATED_AT: (Item.created_at.asc(), Item.id.asc()),
    ItemSort.CREATED_AT_DESC: (Item.created_at.desc(), Item.id.desc()),
    ItemSort.TITLE: (Item.title.asc(), Item.id.asc()),
    ItemSort.TITLE_DESC: (Item.title.desc(), Item.id.desc()),
    ItemSort.ID: (Item.id.asc(),),
    ItemSort.ID_DESC: (Item.id.desc(),),
}


def visible_to(viewer_id: int | None, is_admin: bool) -> ColumnElement[bool]:
    if is_admin:
        return true()
    if viewer_id is None:
        return Item.is_private == false()
    return or_(Item.is_private == false(), Item.owner_id == viewer_id)


def _filtered(statement: Select, visibility: ColumnElement[bool], q: str | None) -> Select:
    statement = statement.where(visibility)
    if q:
        pattern = contains_pattern(q)
        statement = statement.where(
            or_(
                func.lower(Item.title).like(pattern, escape="\\"),
                func.lower(Item.description).like(pattern, escape="\\"),
            )
        )
    return statement


async def list_visible(
    session: AsyncSession,
    visibility: ColumnElement[bool],
    *,
    q: str | None,
    sort: ItemSort,
    limit: int,
    offset: int,
) -> tuple[list[Item], int]:
    total = await session.scalar(_filtered(select(func.count()).select_from(Item), visibility, q))
    rows = await session.scalars(
        _filtered(select(Item), visibility, q).order_by(*_ORDER[sort]).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def add(session: AsyncSession, item: Item) -> Item:
    session.add(item)
    await session.flush()
    return item


async def update(session: AsyncSession, item: Item, changes: dict[str, object]) -> Item:
    for key, value in changes.items():
        setattr(item, key, value)
    await session.flush()
    return item


async def delete(session: AsyncSession, item: Item) -> None:
    await session.delete(item)
    await session.flush()


async def owned_by(session: AsyncSession, owner_id: int) -> list[Item]:
    return list(await session.scalars(select(Item).where(Item.owner_id == owner_id).order_by(Item.id)))
