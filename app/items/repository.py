"""All SQL for items. Visibility is the same WHERE clauses (`_branches`) for a page and its
total, so lists and totals agree."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    RowMapping,
    false,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import contains_pattern
from app.items.cursor import After
from app.items.schemas import ItemSort
from app.models import Item

# Each sort: its key column (None: the id alone) and direction. Ties on the key are broken
# by id in the same direction, so (key, id) orders every row exactly once.
_SORT: dict[ItemSort, tuple[Any, bool]] = {
    ItemSort.CREATED_AT: (Item.created_at, False),
    ItemSort.CREATED_AT_DESC: (Item.created_at, True),
    ItemSort.TITLE: (Item.title, False),
    ItemSort.TITLE_DESC: (Item.title, True),
    ItemSort.ID: (None, False),
    ItemSort.ID_DESC: (None, True),
}
# `total` is exact up to here; beyond, the count stops and says so (API.md section 6).
TOTAL_CAP = 10_000


@dataclass(frozen=True, slots=True)
class Viewer:
    """Whose listing: None for anonymous callers."""

    user_id: int | None
    is_admin: bool


def _search(q: str | None) -> list[ColumnElement[bool]]:
    if not q:
        return []
    # ILIKE on the columns themselves: PostgreSQL's trigram GIN indexes serve it (the
    # migration makes them); SQLAlchemy writes lower() LIKE lower() on SQLite.
    pattern = contains_pattern(q)
    return [or_(Item.title.ilike(pattern, escape="\\"), Item.description.ilike(pattern, escape="\\"))]


def _order(columns: Any, sort: ItemSort) -> list[ColumnElement[Any]]:
    """ORDER BY of `sort` on `columns` (the table's, or the merged parts' `.c`)."""
    column, descending = _SORT[sort]
    keys = [columns.id] if column is None else [columns[column.key], columns.id]
    return [c.desc() if descending else c.asc() for c in keys]


def _after(sort: ItemSort, after: After) -> ColumnElement[bool]:
    column, descending = _SORT[sort]
    if column is None:
        return Item.id < after.id if descending else Item.id > after.id
    row = tuple_(column, Item.id)
    bound = tuple_(literal(after.key, column.type), literal(after.id, Integer()))
    return row < bound if descending else row > bound


def _branches(viewer: Viewer) -> list[list[ColumnElement[bool]]]:
    """The listing as index-sized parts: everything (an admin), the public items, and the
    viewer's own private ones. Each part is one range of one index (models/item.py), which
    a single `public OR mine` condition could not use."""
    if viewer.is_admin:
        return [[]]
    public = [Item.is_private == false()]
    if viewer.user_id is None:
        return [public]
    return [public, [Item.is_private == true(), Item.owner_id == viewer.user_id]]


async def list_visible(
    session: AsyncSession,
    viewer: Viewer,
    *,
    q: str | None,
    sort: ItemSort,
    limit: int,
    offset: int | None,
    after: After | None,
) -> tuple[list[RowMapping], int, bool]:
    """One page (`limit` + 1 rows when there is a next one), the total (capped) and
    whether it was capped. A page by `after` (keyset) costs what the first page costs;
    an `offset` skips rows as the database must."""
    filters = _search(q)
    keyset = [_after(sort, after)] if after is not None else []
    wanted = limit + 1 + (offset or 0)
    # Rows, not ORM objects: a page is read, serialised and forgotten, and building (and
    # adapting, for the merged parts) 100 mapped instances was a fifth of its cost.
    table = Item.__table__
    parts = [
        select(table).where(*branch, *filters, *keyset).order_by(*_order(table.c, sort)).limit(wanted)
        for branch in _branches(viewer)
    ]
    if len(parts) == 1:
        statement = parts[0].offset(offset or 0).limit(limit + 1)
    else:
        # Each part ordered and cut in its own index, then merged: a few dozen rows sorted.
        merged = union_all(*(select(part.subquery()) for part in parts)).subquery()
        statement = select(merged).order_by(*_order(merged.c, sort)).offset(offset or 0).limit(limit + 1)
    rows = list((await session.execute(statement)).mappings())
    # Counted part by part, as the pages are (each part in its own index), each part
    # stopping at TOTAL_CAP + 1 rows: a count never reads more than that many per part.
    counts = [
        select(func.count())
        .select_from(select(Item.id).where(*branch, *filters).limit(TOTAL_CAP + 1).subquery())
        .scalar_subquery()
        for branch in _branches(viewer)
    ]
    total = int(await session.scalar(select(sum(counts[1:], counts[0]))) or 0)
    return rows, min(total, TOTAL_CAP), total > TOTAL_CAP


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
