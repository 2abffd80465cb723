"""Every statement on the outbox table.

A claim is one UPDATE over the due rows it picked with `FOR UPDATE SKIP LOCKED`
(PostgreSQL): two senders claiming at once take disjoint rows, neither waits for the
other, and the claim is committed before anything is sent. SQLite does not render the
locking clause; there, one statement is atomic anyway, and the embedded default has one
process. The outcome of an attempt is recorded only while the row still carries the
attempt count of its claim: a sender whose lease ran out (and whose rows another sender
claimed since) changes nothing.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.mail import LAST_ERROR_LENGTH, MailOutbox

_UNSENT = (MailOutbox.sent_at.is_(None), MailOutbox.failed_at.is_(None))


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    attempts: int  # this claim's count: the token its outcome is recorded under
    to_address: str
    subject: str
    body: str
    headers: dict[str, str]


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int
) -> list[Claimed]:
    due = (
        select(MailOutbox.id)
        .where(*_UNSENT, MailOutbox.send_after <= now)
        .order_by(MailOutbox.send_after, MailOutbox.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = await session.execute(
        update(MailOutbox)
        .where(MailOutbox.id.in_(due.scalar_subquery()))
        .values(attempts=MailOutbox.attempts + 1, send_after=lease_until)
        .returning(
            MailOutbox.id,
            MailOutbox.attempts,
            MailOutbox.to_address,
            MailOutbox.subject,
            MailOutbox.body,
            MailOutbox.headers,
        )
        .execution_options(synchronize_session=False)
    )
    rows = [Claimed(*row) for row in claimed.all()]
    return sorted(rows, key=lambda row: row.id)


async def _record(session: AsyncSession, claim: Claimed, **values: object) -> bool:
    result = await session.execute(
        update(MailOutbox)
        .where(MailOutbox.id == claim.id, MailOutbox.attempts == claim.attempts, *_UNSENT)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def mark_sent(session: AsyncSession, claim: Claimed, now: datetime) -> bool:
    return await _record(session, claim, sent_at=now, last_error=None)


async def mark_failed(
    session: AsyncSession, claim: Claimed, error: str, *, retry_at: datetime | None, now: datetime
) -> bool:
    """A failed attempt: retried from `retry_at`, or given up (None)."""
    error = error[:LAST_ERROR_LENGTH]
    if retry_at is None:
        return await _record(session, claim, failed_at=now, last_error=error)
    return await _record(session, claim, send_after=retry_at, last_error=error)


async def release(session: AsyncSession, claims: list[Claimed], now: datetime) -> None:
    """Claimed rows not attempted (the sender is stopping): due again at once, the
    attempt not counted."""
    for claim in claims:
        await _record(session, claim, send_after=now, attempts=claim.attempts - 1)


async def oldest_unsent(session: AsyncSession) -> datetime | None:
    return (await session.execute(select(func.min(MailOutbox.created_at)).where(*_UNSENT))).scalar()


async def purge_sent(session: AsyncSession, before: datetime) -> int:
    result = await session.execute(delete(MailOutbox).where(MailOutbox.sent_at < before))
    assert isinstance(result, CursorResult)
    return result.rowcount


def add(session: AsyncSession, row: MailOutbox) -> None:
    session.add(row)
