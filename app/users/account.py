"""Deleting the account (API.md section 10; its export is export.py). It needs a fresh
session (section 9): a stolen session cookie alone cannot. Never commits."""

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.auth import repository as users
from app.auth.notices import enqueue_notice
from app.auth.principal import Principal
from app.auth.sessions.types import SessionStore
from app.auth.tokens import service as tokens
from app.errors import AppError, ErrorCode
from app.items import service as items_service


async def delete(
    session: AsyncSession, store: SessionStore, request: HTTPConnection, principal: Principal
) -> None:
    """The user, their items (announced as `item.deleted` after the commit), sessions (their
    sockets closed), passkeys and second factors go; the security log keeps one record that
    the account was deleted, without the email; the old address gets a last notice."""
    # Locked first, as every admin change does: two last superusers deleting themselves at
    # once take turns, and the second is refused.
    superusers = await users.lock_active_superusers(session)
    user = await users.lock(session, principal.user.id)
    if user is None:
        raise AppError(ErrorCode.NOT_AUTHENTICATED)
    if superusers == {user.id}:
        raise AppError(ErrorCode.LAST_SUPERUSER, "The last active superuser cannot delete their account.")
    # The notice writes the security-log row; its user_id becomes NULL with the user (ON
    # DELETE SET NULL), so the id stays in the details.
    enqueue_notice(session, request, user, "account_deleted", details={"user_id": user.id})
    # Before the commit: if Redis is down nothing is deleted (503) rather than an account
    # gone with its sessions alive. app/auth/cache.py revokes once more after the commit.
    await store.revoke_user(user.id)
    await tokens.revoke_all(session, request, store, user.id, "account_deleted", logged=False)
    await items_service.forget_owner(session, user.id)
    await users.delete(session, user)
