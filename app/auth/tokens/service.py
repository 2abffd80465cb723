"""Checking, creating and revoking personal access tokens (API.md section 11).

The hot path costs one store round trip and no query: the store caches, per token digest,
what the check needs (user, scopes, expiry), next to the user snapshot the session path
uses too. A miss (first use, an hour later, after a revocation) reads the row once.

Revocation must take effect at once, in every worker: the cache is guarded by a per-user
token generation in the store. Revoking moves it on before the commit (every cached entry
of the user becomes a miss at once; if the store is down nothing commits) and again after
it. A miss reads the generation while holding the token's row lock (SELECT ... FOR UPDATE)
and caches under it, so a revocation waiting on that lock commits after the entry exists,
and its second move makes that entry a miss too: no entry of a deleted row can outlive
its deletion. A missed second move (the store failing between the two) leaves at most an
entry that was written concurrently, for at most TOKEN_CACHE_SECONDS.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.audit import audit
from app.auth.cache import load_snapshot
from app.auth.mail import run_in_background
from app.auth.principal import Assurance, Principal, SessionUser, snapshot
from app.auth.sessions import SESSION_STORE
from app.auth.sessions.types import (
    TOKEN_CACHE_SECONDS,
    TOKEN_USE_RESOLUTION_SECONDS,
    CachedToken,
    SessionStore,
    TokenState,
)
from app.auth.tokens import Scope, digest, mint, repository, well_formed
from app.db import SESSIONMAKER, after_commit, transaction, utcnow
from app.errors import AppError, ErrorCode
from app.models import AccessToken
from app.security_log import SecurityEvent, record_event
from app.state import state_of

logger = logging.getLogger(__name__)

# How a token authenticates (API.md section 9's vocabulary): never fresh, never a second
# factor, so no route that needs either is reachable by one even if it named a scope.
TOKEN_ASSURANCE = Assurance(1, ("token",), 0.0)
# A user's tokens at most: enough for every script a person runs, few enough that the
# list stays short whatever a script does with a fresh session.
MAX_TOKENS_PER_USER = 100
USE_RESOLUTION = timedelta(seconds=TOKEN_USE_RESOLUTION_SECONDS)


def invalid() -> AppError:
    return AppError(ErrorCode.INVALID_TOKEN, "The bearer token is unknown, expired or revoked.", status=401)


def principal_of(user: SessionUser, token: CachedToken) -> Principal:
    return Principal(user, f"token:{token.token_id}", TOKEN_ASSURANCE, scopes=frozenset(token.scopes))


async def authenticate(request: HTTPConnection, credentials: str) -> Principal:
    """The token's user and scopes, or 401 `invalid_token`; a deactivated user's tokens
    stop at once (their snapshot says so), as their sessions do."""
    if not well_formed(credentials):
        raise invalid()
    state = state_of(request)
    store, token_digest = state[SESSION_STORE], digest(credentials)
    found = await store.read_token(token_digest)
    if found.outcome is TokenState.EXPIRED:
        raise invalid()
    user: SessionUser | None
    if found.outcome is TokenState.MISS or found.token is None:
        token, user = await _read_through(state[SESSIONMAKER], store, token_digest)
    else:
        token, user = (
            found.token,
            found.user or await load_snapshot(state[SESSIONMAKER], store, found.token.user_id),
        )
        if found.touched:
            run_in_background(_record_use(state[SESSIONMAKER], token.token_id))
    if user is None or not user.is_active:
        raise invalid()
    return principal_of(user, token)


async def _read_through(
    sessionmaker: async_sessionmaker[AsyncSession], store: SessionStore, token_digest: str
) -> tuple[CachedToken, SessionUser]:
    now = utcnow()
    async with transaction(sessionmaker) as session:
        found = await repository.locked_by_digest(session, token_digest)
        if found is None or found[0].expires_at <= now:
            raise invalid()
        row, user = found
        used = row.last_used_at
        if used is None or used < now - USE_RESOLUTION:
            row.last_used_at = used = now
        token = CachedToken(
            row.id,
            row.user_id,
            tuple(row.scopes.split()),
            row.expires_at.timestamp(),
            used.timestamp(),
            await store.token_generation(row.user_id),
        )
        fresh = snapshot(user)
        ttl = min(TOKEN_CACHE_SECONDS, int(row.expires_at.timestamp() - time.time()) + 1)
        await store.cache_token(token_digest, token, ttl)  # under the row lock: see above
    await store.cache_user(fresh, only_if_absent=True)
    return token, fresh


async def _record_use(sessionmaker: async_sessionmaker[AsyncSession], token_id: int) -> None:
    async with transaction(sessionmaker) as session:
        await repository.record_use(session, token_id, utcnow(), USE_RESOLUTION)


@dataclass(frozen=True, slots=True)
class Created:
    row: AccessToken
    token: str  # shown this once


async def create(
    session: AsyncSession,
    request: HTTPConnection,
    user_id: int,
    *,
    name: str,
    scopes: list[Scope],
    days: int,
) -> Created:
    if await repository.count_of(session, user_id) >= MAX_TOKENS_PER_USER:
        raise AppError(
            ErrorCode.CONFLICT, f"You have {MAX_TOKENS_PER_USER} tokens: delete one before creating another."
        )
    token, now = mint(), utcnow()
    row = AccessToken(
        user_id=user_id,
        name=name,
        token_hash=digest(token),
        scopes=" ".join(sorted(set(scopes))),
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(row)
    await session.flush()
    details = {"token_id": row.id, "name": name, "scopes": row.scopes.split()}
    record_event(session, request, user_id, SecurityEvent.TOKEN_CREATED, details)
    after_commit(session, _audited(request, "token_created", user_id, row.id))
    return Created(row, token)


async def revoke(
    session: AsyncSession, request: HTTPConnection, store: SessionStore, user_id: int, token_id: int
) -> None:
    row = await repository.delete_one(session, user_id, token_id)
    if row is None:
        raise AppError(ErrorCode.NOT_FOUND)
    details = {"token_id": row.id, "name": row.name, "reason": "deleted"}
    record_event(session, request, user_id, SecurityEvent.TOKEN_REVOKED, details)
    await _stop_cached(session, store, user_id)
    after_commit(session, _audited(request, "token_revoked", user_id, row.id))


async def revoke_all(
    session: AsyncSession,
    request: HTTPConnection | None,
    store: SessionStore,
    user_id: int,
    reason: str,
    *,
    logged: bool = True,
) -> int:
    """Every token of the user, in the caller's unit of work (a password reset, a
    deactivation, `DELETE /admin/users/{id}/sessions`, the user's deletion: not `logged`
    in the security log, whose `account_deleted` row says it all)."""
    revoked = await repository.delete_all(session, user_id)
    for token_id, name in revoked if logged else ():
        details = {"token_id": token_id, "name": name, "reason": reason}
        record_event(session, request, user_id, SecurityEvent.TOKEN_REVOKED, details)
    await _stop_cached(session, store, user_id)
    if revoked:
        ids = [token_id for token_id, _ in revoked]
        after_commit(session, _audited(request, "tokens_revoked", user_id, ids, reason=reason))
    return len(revoked)


async def _stop_cached(session: AsyncSession, store: SessionStore, user_id: int) -> None:
    await store.revoke_tokens(user_id)  # now: if the store is down, nothing commits (503)

    async def once_more() -> None:
        await store.revoke_tokens(user_id)

    after_commit(session, once_more)


def _audited(
    request: HTTPConnection | None, event: str, actor: int, target: object, **fields: Any
) -> Callable[[], Awaitable[None]]:
    async def write() -> None:
        audit(request, event, "success", actor=actor, target=target, **fields)

    return write
