"""Every SQL statement on the security_event table."""

from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import SecurityLogEntry


def add(session: AsyncSession, entry: SecurityLogEntry) -> None:
    session.add(entry)


async def page_of(
    session: AsyncSession, user_id: int, *, limit: int, offset: int
) -> tuple[list[SecurityLogEntry], int]:
    """One user's events, newest first (ties: the later row first), and how many there are."""
    where = SecurityLogEntry.user_id == user_id
    total = await session.scalar(select(func.count()).select_from(SecurityLogEntry).where(where))
    rows = await session.scalars(
        select(SecurityLogEntry)
        .where(where)
        .order_by(SecurityLogEntry.created_at.desc(), SecurityLogEntry.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total or 0


async def batch_of(
    session: AsyncSession, user_id: int, *, before: SecurityLogEntry | None, limit: int
) -> list[SecurityLogEntry]:
    """One user's events, newest first, from just before `before` (a keyset batch: the
    export; the order of page_of)."""
    statement = select(SecurityLogEntry).where(SecurityLogEntry.user_id == user_id)
    if before is not None:
        key = tuple_(SecurityLogEntry.created_at, SecurityLogEntry.id)
        bound = tuple_(literal(before.created_at, SecurityLogEntry.created_at.type), literal(before.id))
        statement = statement.where(key < bound)
    order = (SecurityLogEntry.created_at.desc(), SecurityLogEntry.id.desc())
    return list(await session.scalars(statement.order_by(*order).limit(limit)))


async def delete_older_than(session: AsyncSession, cutoff: datetime, *, batch: int) -> int:
    """Delete at most `batch` events from before `cutoff`; how many went. A bounded batch
    keeps each statement short (statement_timeout) and each lock brief."""
    oldest = (
        select(SecurityLogEntry.id)
        .where(SecurityLogEntry.created_at < cutoff)
        .order_by(SecurityLogEntry.created_at)
        .limit(batch)
    )
    statement = delete(SecurityLogEntry).where(SecurityLogEntry.id.in_(oldest.scalar_subquery()))
    result: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
        statement.execution_options(synchronize_session=False)
    )
    return result.rowcount or 0
