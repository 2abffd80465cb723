"""All SQL for items. Visibility is the same WHERE clauses (`_branches`) for a page and its
total, so lists and totals agree."""

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    RowMapping,
    Select,
    String,
    bindparam,
    false,
    func,
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


def _order(columns: Any, sort: ItemSort) -> list[ColumnElement[Any]]:
    """ORDER BY of `sort` on `columns` (the table's, or the merged parts' `.c`)."""
    column, descending = _SORT[sort]
    keys = [columns.id] if column is None else [columns[column.key], columns.id]
    return [c.desc() if descending else c.asc() for c in keys]


def _after(sort: ItemSort) -> ColumnElement[bool]:
    """Strictly after the bound (`after_key`, `after_id`) in the order of `sort`."""
    column, descending = _SORT[sort]
    after_id = bindparam("after_id", type_=Integer())
    if column is None:
        return Item.id < after_id if descending else Item.id > after_id
    row = tuple_(column, Item.id)
    bound = tuple_(bindparam("after_key", type_=column.type), after_id)
    return row < bound if descending else row > bound


def _branches(kind: str) -> list[list[ColumnElement[bool]]]:
    """The listing as index-sized parts: everything (an admin), the public items, and the
    viewer's own private ones. Each part is one range of one index (models/item.py), which
    a single `public OR mine` condition could not use."""
    if kind == "admin":
        return [[]]
    public = [Item.is_private == false()]
    if kind == "anonymous":
        return [public]
    return [public, [Item.is_private == true(), Item.owner_id == bindparam("owner", type_=Integer())]]


def _search() -> list[ColumnElement[bool]]:
    # ILIKE on the columns themselves: PostgreSQL's trigram GIN indexes serve it (the
    # migration makes them); SQLAlchemy writes lower() LIKE lower() on SQLite.
    pattern = bindparam("pattern", type_=String())
    return [or_(Item.title.ilike(pattern, escape="\\"), Item.description.ilike(pattern, escape="\\"))]


def _total(kind: str, search: bool) -> ColumnElement[int]:
    """The capped total: counted part by part, as the pages are (each part in its own
    index), each part stopping at TOTAL_CAP + 1 rows, so that a count never reads more."""
    filters = _search() if search else []
    counts = [
        select(func.count())
        .select_from(select(Item.id).where(*branch, *filters).limit(TOTAL_CAP + 1).subquery())
        .scalar_subquery()
        for branch in _branches(kind)
    ]
    return sum(counts[1:], counts[0])


@lru_cache(maxsize=128)
def _page(kind: str, sort: ItemSort, search: bool, keyset: bool) -> Select[Any]:
    """The page's statement for one shape of listing, built once: its values are bound
    at execution (building it, the merged parts' column adaptation above all, was a tenth
    of a request). Its rows carry the capped total in `_total`: one round trip."""
    table = Item.__table__
    filters = _search() if search else []
    after = [_after(sort)] if keyset else []
    wanted = bindparam("wanted", type_=Integer())
    parts = [
        select(table).where(*branch, *filters, *after).order_by(*_order(table.c, sort)).limit(wanted)
        for branch in _branches(kind)
    ]
    offset, limit = bindparam("offset", type_=Integer()), bindparam("limit", type_=Integer())
    total = _total(kind, search).label("_total")
    if len(parts) == 1:
        return parts[0].add_columns(total).offset(offset).limit(limit)
    # Each part ordered and cut in its own index, then merged: a few dozen rows sorted.
    merged = union_all(*(select(part.subquery()) for part in parts)).subquery()
    return select(merged, total).order_by(*_order(merged.c, sort)).offset(offset).limit(limit)


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
    an `offset` skips rows as the database must. Rows, not ORM objects: a page is read,
    serialised and forgotten, and building 100 mapped instances was a fifth of its cost."""
    kind = "admin" if viewer.is_admin else ("anonymous" if viewer.user_id is None else "user")
    values: dict[str, Any] = {"wanted": limit + 1 + (offset or 0), "offset": offset or 0, "limit": limit + 1}
    if kind == "user":
        values["owner"] = viewer.user_id
    if q:
        values["pattern"] = contains_pattern(q)
    if after is not None:
        values["after_id"] = after.id
        if _SORT[sort][0] is not None:
            values["after_key"] = after.key
    # On the session's connection (Core), not session.execute: the statement selects columns,
    # not entities, and the ORM's execution layer around it did nothing but cost time.
    connection = await session.connection()
    rows = list((await connection.execute(_page(kind, sort, bool(q), after is not None), values)).mappings())
    if rows:
        total = int(rows[0]["_total"])
    elif after is None and not offset:
        total = 0  # an empty first page: nothing matches
    else:  # past the end: the total still counts what matches
        count = {key: value for key, value in values.items() if key in ("owner", "pattern")}
        total = int(await session.scalar(select(_total(kind, bool(q))), count) or 0)
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


async def owned_batch(session: AsyncSession, owner_id: int, *, after: int, limit: int) -> list[Item]:
    """The owner's items with an id above `after`, by id (a keyset batch: the export)."""
    statement = select(Item).where(Item.owner_id == owner_id, Item.id > after).order_by(Item.id).limit(limit)
    return list(await session.scalars(statement))


async def owned_by(session: AsyncSession, owner_id: int) -> list[Item]:
    return list(await session.scalars(select(Item).where(Item.owner_id == owner_id).order_by(Item.id)))
