"""Declarative base, engine and session factory, and the per-request session."""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import await_only

from app.config import Settings
from app.resolver import RESOLVER, Resolver, needs_lookup
from app.state import Key, state_of

logger = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BEFORE_COMMIT = "before_commit"
AFTER_COMMIT = "after_commit"
AFTER_ROLLBACK = "after_rollback"
Callback = Callable[[], Awaitable[None]]
# Every id column is a 32-bit integer: a larger id in a path cannot exist (a 404, not a
# query PostgreSQL would refuse).
MAX_ID = 2**31 - 1

ENGINE: Key[AsyncEngine] = Key("engine")
SESSIONMAKER: Key[async_sessionmaker[AsyncSession]] = Key("sessionmaker")

Row = TypeVar("Row", bound="Base")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


# What a PostgreSQL that stops answering costs a request, worst case (tests/faults measures
# it; README "Failure behaviour"), each step bounded by a setting:
#   - a pooled connection: its pre-ping waits DB_COMMAND_TIMEOUT_SECONDS, SQLAlchemy then
#     closes it (CLOSE_TIMEOUT_SECONDS, below) and opens a new one (DB_CONNECT_TIMEOUT_SECONDS);
#   - a statement or the commit hanging mid-request: DB_COMMAND_TIMEOUT_SECONDS, then the close;
#   - waiting for a free pooled connection: DB_POOL_TIMEOUT_SECONDS.
# PostgreSQL's own statement_timeout (DB_STATEMENT_TIMEOUT_MS) fires first, so a merely slow
# statement is cancelled cleanly by the server and its connection stays usable; the client's
# command timeout is the backstop for a server or network that does not answer at all.
# Queries here are indexed lookups in milliseconds; one that needs seconds is itself an
# outage to report (503 with Retry-After), not to wait for.
#
# SQLAlchemy closes an invalidated asyncpg connection "gracefully" with a fixed 2 s timeout
# (its dialect's _terminate_graceful_close, sqlalchemy#10717): against a hung server that is
# 2 s more on every failed request. asyncpg lets us choose the connection class, and ours
# caps that close; a close that times out is then a forced one, as before.
CLOSE_TIMEOUT_SECONDS = 0.2


class BoundedCloseConnection(asyncpg.Connection):  # type: ignore[misc]
    async def close(self, *, timeout: float | None = None) -> None:
        await super().close(
            timeout=CLOSE_TIMEOUT_SECONDS if timeout is None else min(timeout, CLOSE_TIMEOUT_SECONDS)
        )


def create_engine(settings: Settings, resolver: Resolver = RESOLVER) -> AsyncEngine:
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 5})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # A dead connection (PostgreSQL restarted) is replaced instead of failing a request.
        pool_pre_ping=True,
        # Fail fast rather than queue forever when PostgreSQL hangs: the request gets 503.
        pool_timeout=settings.db_pool_timeout_seconds,
        # The engine logs the parameters of a failed statement in its exception's message;
        # they include password hashes and emails.
        hide_parameters=True,
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "command_timeout": settings.db_command_timeout_seconds,
            "connection_class": BoundedCloseConnection,
            "server_settings": {
                "statement_timeout": str(settings.db_statement_timeout_ms),
                "application_name": "app",
                # asyncpg prepares every statement, and after five runs PostgreSQL may switch
                # to a generic plan that ignores the parameters: an items search (`ILIKE $1`)
                # then scans the table instead of using the trigram index, for a rare word
                # 650 ms instead of 10 (bench/scale.py). Planning each run costs far less.
                "plan_cache_mode": "force_custom_plan",
            },
        },
    )
    _resolve_host_on_connect(engine, settings.db_connect_timeout_seconds, resolver)
    return engine


def _resolve_host_on_connect(engine: AsyncEngine, timeout: float, resolver: Resolver) -> None:
    """Each new connection's host name through app.resolver (hedged lookups, the last
    address when the resolver does not answer). Not with TLS: asyncpg verifies the
    server's name against the host it was given."""
    url = engine.url
    if not needs_lookup(url.host) or any(key.startswith("ssl") for key in url.query):
        return
    name, port = str(url.host), url.port or 5432

    @event.listens_for(engine.sync_engine, "do_connect")
    def resolve(_dialect: Any, _record: Any, _cargs: list[Any], cparams: dict[str, Any]) -> None:
        # do_connect runs inside the engine's greenlet: the lookup is awaited there.
        # asyncpg tries a list of hosts in order, as it tries a name's addresses.
        cparams["host"] = list(await_only(resolver.resolve(name, port, timeout)))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine, **info: Any) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after commit without a lazy
    # load, which async SQLAlchemy cannot do (fastapi-users #1175, #1395).
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


def before_commit(session: AsyncSession | Session, callback: Callback) -> None:
    """Run `callback` after the last flush and before the commit; if it fails, nothing commits."""
    session.info.setdefault(BEFORE_COMMIT, []).append(callback)


def after_commit(session: AsyncSession | Session, callback: Callback) -> None:
    """Run `callback` once the session's transaction has committed (never on rollback).
    The change is in by then, so a callback that fails is logged, never answered: the
    caller must not be told that a committed change failed."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


def after_rollback(session: AsyncSession | Session, callback: Callback) -> None:
    """Run `callback` if the unit of work does not commit (an error, or a failed commit)."""
    session.info.setdefault(AFTER_ROLLBACK, []).append(callback)


async def _quietly(callback: Callback, when: str) -> None:
    try:
        await callback()
    except Exception as exc:
        logger.warning(
            "%s step failed: %s", when, type(exc).__name__, extra={"event": "unit_of_work_hook_failed"}
        )


@asynccontextmanager
async def transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error, then its hooks."""
    async with sessionmaker() as session:
        try:
            yield session
            # Flush first so that flush-time listeners have registered their callbacks.
            await session.flush()
            for callback in session.info.pop(BEFORE_COMMIT, []):
                await callback()
            await session.commit()
        except BaseException:
            session.info.pop(BEFORE_COMMIT, None)
            session.info.pop(AFTER_COMMIT, None)
            failed = session.info.pop(AFTER_ROLLBACK, [])
            try:
                await session.rollback()
            finally:
                for callback in failed:
                    await _quietly(callback, "after-rollback")
            raise
        session.info.pop(AFTER_ROLLBACK, None)
        for callback in session.info.pop(AFTER_COMMIT, []):
            await _quietly(callback, "after-commit")


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session. Declare with `scope="function"` (see SessionDep) so the
    commit happens before the response is sent: a failed commit must not answer 2xx."""
    async with transaction(state_of(request)[SESSIONMAKER]) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_row(session: AsyncSession, model: type[Row], row_id: int) -> Row | None:
    """The row of `model` with this primary key, or None (also for ids no column can hold)."""
    return await session.get(model, row_id) if 1 <= row_id <= MAX_ID else None


def contains_pattern(text_: str) -> str:
    """A LIKE pattern (escape character backslash) matching `text_` anywhere, case folded."""
    escaped = text_.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def ping(engine: AsyncEngine) -> None:
    """The readiness check's query: the database answers."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
