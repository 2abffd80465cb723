"""The security log (API.md section 10): what happened to an account's security, for its
owner and admins, newest first.

Two ways in, by whether the event comes with a database change:
- `record_event` adds the row to the caller's unit of work: it commits with the change
  it records (a password change, a new passkey) or not at all;
- `record_event_soon` is for events whose change lives in the session store (a login, a
  logout) or that change nothing (a failed login): the row is written by a task of its
  own, in its own unit of work, so the answer does not wait for it; a failure is logged,
  never raised, and the caller's outcome stands.

The ip and the user agent are read from the request when the event is recorded, the
time too (a background write that lands later keeps the event's own time). Retention:
`prune` deletes events older than SECURITY_LOG_RETENTION_DAYS in batches; `start` runs
it hourly in each worker. Never commits outside `transaction()`.
"""

import asyncio
import logging
import random
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.audit import client_ip
from app.config import Settings
from app.db import get_row, transaction, utcnow
from app.errors import AppError, ErrorCode
from app.models import SecurityLogEntry, User
from app.models.security_event import IP_MAX, USER_AGENT_MAX
from app.security_log import repository
from app.security_log.events import SecurityEvent

logger = logging.getLogger("app.security_log")

PRUNE_INTERVAL_SECONDS = 3600
# After start-up, before the first pass: a restart does not wait an hour, a worker that
# fails at once does not delete anything, and workers started together spread out.
PRUNE_FIRST_DELAY_SECONDS = (60, 120)
PRUNE_BATCH = 1000
# Events waiting for their write: beyond this (PostgreSQL hanging under a flood of failed
# logins), new ones are dropped and logged rather than held in memory without bound.
MAX_PENDING = 1000
DRAIN_TIMEOUT_SECONDS = 3.0

# The event loop keeps only weak references to tasks: these are held until done.
_pending: set[asyncio.Task[None]] = set()


def _entry(
    request: HTTPConnection | None, user_id: int | None, event: str, details: dict[str, Any] | None
) -> SecurityLogEntry:
    name = SecurityEvent(event)  # ValueError for a name outside the closed set
    ip = client_ip(request)[:IP_MAX] if request is not None else ""
    agent = request.headers.get("user-agent", "")[:USER_AGENT_MAX] if request is not None else ""
    return SecurityLogEntry(
        user_id=user_id,
        event=name.value,
        created_at=utcnow(),
        ip=ip or None,
        user_agent=agent or None,
        details=details or None,
    )


def record_event(
    session: AsyncSession,
    request: HTTPConnection | None,
    user_id: int | None,
    event: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Record `event` in the caller's unit of work: it commits with the change it records,
    or not at all. `details`: identifiers and counts only, never a secret."""
    repository.add(session, _entry(request, user_id, event, details))


def record_event_soon(
    sessionmaker: async_sessionmaker[AsyncSession],
    request: HTTPConnection | None,
    user_id: int | None,
    event: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Record `event` in a unit of work of its own, in the background: for events without
    a database change. Returns at once; a failed write is logged."""
    entry = _entry(request, user_id, event, details)
    if len(_pending) >= MAX_PENDING:
        logger.warning(
            "security event dropped: %d writes pending",
            len(_pending),
            extra={"event": "security_log_dropped", "security_event": entry.event, "actor": user_id},
        )
        return
    task = asyncio.create_task(_write(sessionmaker, entry))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _write(sessionmaker: async_sessionmaker[AsyncSession], entry: SecurityLogEntry) -> None:
    try:
        async with transaction(sessionmaker) as session:
            repository.add(session, entry)
    except Exception as exc:
        logger.error(
            "security event not recorded: %s",
            type(exc).__name__,
            extra={
                "event": "security_log_write_failed",
                "security_event": entry.event,
                "actor": entry.user_id,
            },
        )


async def drain(timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
    """Wait (at most `timeout`) for the background writes under way."""
    if _pending:
        await asyncio.wait(set(_pending), timeout=timeout)


async def events_of(
    session: AsyncSession, user_id: int, *, limit: int, offset: int
) -> tuple[list[SecurityLogEntry], int]:
    """A user's events, newest first, and their total."""
    return await repository.page_of(session, user_id, limit=limit, offset=offset)


async def events_of_user(
    session: AsyncSession, user_id: int, *, limit: int, offset: int
) -> tuple[list[SecurityLogEntry], int]:
    """`events_of` for an admin: 404 for a user that does not exist."""
    if await get_row(session, User, user_id) is None:
        raise AppError(ErrorCode.NOT_FOUND, "User not found.")
    return await events_of(session, user_id, limit=limit, offset=offset)


async def prune(
    sessionmaker: async_sessionmaker[AsyncSession],
    retention_days: int,
    *,
    now: datetime | None = None,
    batch: int = PRUNE_BATCH,
) -> int:
    """Delete the events older than `retention_days`, one committed batch at a time; how many."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    total = 0
    while True:
        async with transaction(sessionmaker) as session:
            deleted = await repository.delete_older_than(session, cutoff, batch=batch)
        total += deleted
        if deleted < batch:
            return total


async def _prune_forever(sessionmaker: async_sessionmaker[AsyncSession], retention_days: int) -> None:
    await asyncio.sleep(random.uniform(*PRUNE_FIRST_DELAY_SECONDS))
    while True:
        try:
            deleted = await prune(sessionmaker, retention_days)
        except Exception as exc:  # PostgreSQL away: the next pass catches up
            logger.warning("security log pruning failed: %s", type(exc).__name__)
        else:
            if deleted:
                logger.info("security log: %d events past retention deleted", deleted)
        await asyncio.sleep(PRUNE_INTERVAL_SECONDS)


def start(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> asyncio.Task[None]:
    """The hourly retention pass of this worker (the lifespan starts it)."""
    return asyncio.create_task(_prune_forever(sessionmaker, settings.security_log_retention_days))


async def stop(pruning: asyncio.Task[None]) -> None:
    """End the retention pass and let the background writes finish (before the engine goes)."""
    pruning.cancel()
    with suppress(asyncio.CancelledError):
        await pruning
    await drain()
