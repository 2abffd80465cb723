"""Declarative base, engine and session factory, and the per-request session."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

from app.config import Settings
from app.state import Key, state_of

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BEFORE_COMMIT = "before_commit"
AFTER_COMMIT = "after_commit"
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


# The contract answers a hung PostgreSQL with 503 within 5 s (API.md section 1), and
# tests/faults measured what a hang costs a request, worst case:
#   - a pooled connection: its pre-ping times out (COMMAND_TIMEOUT), then SQLAlchemy closes
#     the invalidated connection gracefully for up to 2 s more (fixed in its asyncpg dialect);
#   - a statement hanging mid-request: the same, COMMAND_TIMEOUT + 2 s;
#   - a new connection: CONNECT_TIMEOUT; waiting for a free pooled one: POOL_TIMEOUT.
# With the former 5 s command timeout a hang took 7 s and a pool wait 5 s, so all are 2 s now:
# 4 s at worst. Queries here are indexed OLTP lookups in milliseconds; one that needs
# seconds is itself an outage to report (503 with Retry-After), not to wait for.
# PostgreSQL's own statement_timeout fires first, so a merely slow statement is cancelled
# cleanly by the server and its connection stays usable; the client's command timeout is
# the backstop for a server or network that does not answer at all.
CONNECT_TIMEOUT_SECONDS = 2
COMMAND_TIMEOUT_SECONDS = 2
POOL_TIMEOUT_SECONDS = 2
STATEMENT_TIMEOUT_MS = "1500"


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 5})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # A dead connection (PostgreSQL restarted) is replaced instead of failing a request.
        pool_pre_ping=True,
        # Fail fast rather than queue forever when PostgreSQL hangs: the request gets 503.
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args={
            "timeout": CONNECT_TIMEOUT_SECONDS,
            "command_timeout": COMMAND_TIMEOUT_SECONDS,
            "server_settings": {"statement_timeout": STATEMENT_TIMEOUT_MS, "application_name": "app"},
        },
    )


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
    """Run `callback` once the session's transaction has committed (never on rollback)."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


@asynccontextmanager
async def transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error, then the after-commit callbacks."""
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
            await session.rollback()
            raise
        for callback in session.info.pop(AFTER_COMMIT, []):
            await callback()


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
