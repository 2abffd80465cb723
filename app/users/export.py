"""GET /users/me/export (API.md section 10), streamed: the document is written as it is
read, a batch of rows at a time, so that a user with 100,000 items costs the worker one
batch of memory, not the whole document (README "Account security" has the figures).

Everything that can fail with a 503 is asked before the first byte: the user's row, their
sessions (Redis). The rows then come from one transaction (REPEATABLE READ on PostgreSQL:
one snapshot for the whole document, however long the download takes). A failure after
the first byte cuts the download short (the JSON does not parse), and is logged.
"""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.mfa import repository as factors
from app.auth.mfa.schemas import PasskeyRead
from app.auth.oidc import repository as identities
from app.auth.oidc.schemas import IdentityRead
from app.auth.principal import Principal
from app.auth.schemas import UserRead
from app.auth.sessions.types import SessionStore
from app.auth.tokens import repository as token_rows
from app.auth.tokens.schemas import TokenRead
from app.db import get_row, utcnow
from app.errors import AppError, ErrorCode
from app.items import repository as item_rows
from app.items.schemas import ItemRead
from app.models import Item, SecurityLogEntry, User
from app.security_log import repository as event_rows
from app.security_log.schemas import SecurityEventRead
from app.users.schemas import SessionRead, session_reads

logger = logging.getLogger(__name__)

BATCH = 500
_SESSIONS = TypeAdapter(list[SessionRead])


async def _items(session: AsyncSession, user_id: int, last: Item | None) -> list[Item]:
    rows = await item_rows.owned_batch(session, user_id, after=last.id if last else 0, limit=BATCH)
    session.expunge_all()  # the batch's objects go once serialised: memory stays one batch
    return rows


async def _events(
    session: AsyncSession, user_id: int, last: SecurityLogEntry | None
) -> list[SecurityLogEntry]:
    rows = await event_rows.batch_of(session, user_id, before=last, limit=BATCH)
    session.expunge_all()
    return rows


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
            async for chunk in _array(lambda last: _items(session, user.id, last), ItemRead):
                yield chunk
            yield b',"sessions":' + _SESSIONS.dump_json(sessions)
            passkeys = [
                PasskeyRead.model_validate(row) for row in await factors.passkeys_of(session, user.id)
            ]
            yield b',"passkeys":' + to_json(passkeys)
            linked = [
                IdentityRead.model_validate(row) for row in await identities.identities_of(session, user.id)
            ]
            yield b',"identities":' + to_json(linked)
            tokens = [TokenRead.model_validate(row) for row in await token_rows.tokens_of(session, user.id)]
            yield b',"tokens":' + to_json(tokens)
            yield b',"security_events":'
            async for chunk in _array(lambda last: _events(session, user.id, last), SecurityEventRead):
                yield chunk
            yield b',"exported_at":' + to_json(now) + b"}"
    except Exception as exc:
        logger.error(
            "account export cut short: %s",
            type(exc).__name__,
            extra={"event": "export_failed", "actor": user.id},
        )
        raise


async def _array(
    fetch: Callable[[Any], Awaitable[Sequence[Any]]], schema: type[BaseModel]
) -> AsyncIterator[bytes]:
    """A JSON array of the rows `fetch(last row or None)` returns batch after batch (a
    keyset: each batch starts after the last row of the one before), as `schema`."""
    yield b"["
    first, last = True, None
    while True:
        rows = await fetch(last)
        for row in rows:
            yield (b"" if first else b",") + schema.model_validate(row).model_dump_json().encode()
            first = False
        if len(rows) < BATCH:
            break
        last = rows[-1]
    yield b"]"
