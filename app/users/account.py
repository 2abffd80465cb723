"""The account as a whole (API.md section 10): taking its data out, and deleting it. Both
need a fresh session (section 9): a stolen session cookie alone can do neither. Never commits."""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.auth import repository as users
from app.auth.mfa import repository as factors
from app.auth.mfa.schemas import PasskeyRead
from app.auth.notices import enqueue_notice
from app.auth.oidc import repository as identities
from app.auth.oidc.schemas import IdentityRead
from app.auth.principal import Principal
from app.auth.schemas import UserRead
from app.auth.sessions.types import SessionStore
from app.db import utcnow
from app.errors import AppError, ErrorCode
from app.items import service as items_service
from app.items.schemas import ItemRead
from app.security_log import SecurityEvent, record_event
from app.security_log.schemas import SecurityEventRead
from app.security_log.service import events_of
from app.users.schemas import AccountExport, session_reads

# Every event the log still holds (SECURITY_LOG_RETENTION_DAYS), in one document.
EXPORT_EVENTS_MAX = 100_000


async def export(session: AsyncSession, store: SessionStore, principal: Principal) -> AccountExport:
    """Everything the service holds about the user, without a secret: no password hash, no
    TOTP secret, no recovery code, no session token or passkey public key, no provider token
    (none is kept)."""
    user_id = principal.user.id
    user = await users.lock(session, user_id)
    if user is None:
        raise AppError(ErrorCode.NOT_AUTHENTICATED)
    items = await items_service.owned_items(session, user_id)
    events, _ = await events_of(session, user_id, limit=EXPORT_EVENTS_MAX, offset=0)
    return AccountExport(
        user=UserRead.model_validate(user),
        items=[ItemRead.model_validate(item) for item in items],
        sessions=session_reads(await store.list_user(user_id), principal.login_id),
        passkeys=[PasskeyRead.model_validate(key) for key in await factors.passkeys_of(session, user_id)],
        identities=[
            IdentityRead.model_validate(row) for row in await identities.identities_of(session, user_id)
        ],
        tokens=[],
        security_events=[SecurityEventRead.model_validate(event) for event in events],
        exported_at=utcnow(),
    )


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
    enqueue_notice(session, request, user, "account_deleted")
    # user_id becomes NULL with the user (ON DELETE SET NULL); the id stays in the details.
    record_event(session, request, user.id, SecurityEvent.ACCOUNT_DELETED, {"user_id": user.id})
    # Before the commit: if Redis is down nothing is deleted (503) rather than an account
    # gone with its sessions alive. app/auth/cache.py revokes once more after the commit.
    await store.revoke_user(user.id)
    await items_service.forget_owner(session, user.id)
    await users.delete(session, user)


def export_filename(now: datetime) -> str:
    return f"account-export-{now:%Y%m%d}.json"
