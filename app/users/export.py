"""GET /users/me/export (API.md section 10), streamed: the document is written as it is
read, a batch of rows at a time, so that a user with 100,000 items costs the worker one
batch of memory, not the whole document (README "Account security" has the figures).

Everything that can fail with a 503 is asked before the first byte: the user's row, their
sessions (Redis). The rows then come from one transaction (REPEATABLE READ on PostgreSQL:
one snapshot for the whole document, however long the download takes). A failure after
the first byte cuts the download short (the JSON does not parse), and is logged.
"""

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic_core import to_json
from sqlalchemy import Select, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.mfa import repository as factors
from app.auth.mfa.schemas import PasskeyRead
from app.auth.principal import Principal
from app.auth.schemas import UserRead
from app.auth.sessions.types import SessionStore
from app.auth.tokens import repository as token_rows
from app.auth.tokens.schemas import TokenRead
from app.db import get_row, utcnow
from app.errors import AppError, ErrorCode
from app.items.schemas import ItemRead
from app.models import Item, SecurityLogEntry, User
from app.security_log.schemas import SecurityEventRead
from app.users.schemas import SessionRead, session_reads

logger = logging.getLogger(__name__)

BATCH = 500
_SESSIONS = TypeAdapter(list[SessionRead])


def filename(now: datetime) -> str:
    return f"account-export-{now:%Y%m%d}.json"


async def export(
    sessionmaker: async_sessionmaker[AsyncSession], store: SessionStore, principal: Principal
) -> tuple[datetime, AsyncIterator[bytes]]:
    """When the export was taken, and its body. Raises (401, 503) before the first byte."""
    user_id = principal.user.id
    async with sessionmaker() as session:
        user = await get_row(session, User, user_id)
    if user is None:
        raise AppError(ErrorCode.NOT_AUTHENTICATED)
    sessions = session_reads(await store.list_user(user_id), principal.login_id)
    now = utcnow()
    return now, _document(sessionmaker, UserRead.model_validate(user), sessions, now)


async def _document(
    sessionmaker: async_sessionmaker[AsyncSession], user: UserRead, sessions: list[SessionRead], now: datetime
) -> AsyncIterator[bytes]:
    try:
        async with sessionmaker() as session:
            if session.bind.dialect.name == "postgresql":
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield b'{"user":' + user.model_dump_json().encode()
            yield b',"items":'
            async for chunk in _array(session, _items(user.id), _item_after, ItemRead):
                yield chunk
            yield b',"sessions":' + _SESSIONS.dump_json(sessions)
            passkeys = [
                PasskeyRead.model_validate(row) for row in await factors.passkeys_of(session, user.id)
            ]
            yield b',"passkeys":' + to_json(passkeys)
            tokens = [TokenRead.model_validate(row) for row in await token_rows.tokens_of(session, user.id)]
            yield b',"tokens":' + to_json(tokens)
            yield b',"security_events":'
            async for chunk in _array(session, _events(user.id), _event_before, SecurityEventRead):
                yield chunk
            yield b',"exported_at":' + to_json(now) + b"}"
    except Exception as exc:
        logger.error(
            "account export cut short: %s",
            type(exc).__name__,
            extra={"event": "export_failed", "actor": user.id},
        )
        raise


def _items(user_id: int) -> Select[tuple[Item]]:
    return select(Item).where(Item.owner_id == user_id).order_by(Item.id)


def _item_after(statement: Select[Any], last: Item) -> Select[Any]:
    return statement.where(Item.id > last.id)


def _events(user_id: int) -> Select[tuple[SecurityLogEntry]]:
    order = (SecurityLogEntry.created_at.desc(), SecurityLogEntry.id.desc())
    return select(SecurityLogEntry).where(SecurityLogEntry.user_id == user_id).order_by(*order)


def _event_before(statement: Select[Any], last: SecurityLogEntry) -> Select[Any]:
    # Newest first, as the security log's pages are: keyset on (created_at, id).
    key = tuple_(SecurityLogEntry.created_at, SecurityLogEntry.id)
    bound = tuple_(literal(last.created_at, SecurityLogEntry.created_at.type), literal(last.id))
    return statement.where(key < bound)


async def _array(
    session: AsyncSession,
    statement: Select[Any],
    after: Callable[[Select[Any], Any], Select[Any]],
    schema: type[BaseModel],
) -> AsyncIterator[bytes]:
    """A JSON array of `statement`'s rows as `schema`, BATCH rows per query (keyset)."""
    yield b"["
    first, page = True, statement
    while True:
        rows: Sequence[Any] = (await session.scalars(page.limit(BATCH))).all()
        for row in rows:
            yield (b"" if first else b",") + schema.model_validate(row).model_dump_json().encode()
            first = False
        if len(rows) < BATCH:
            break
        page = after(statement, rows[-1])
        session.expunge_all()  # the batch's objects go: memory stays one batch
    yield b"]"
