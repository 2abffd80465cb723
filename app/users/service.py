"""A user's own account (API.md section 4): the rules fastapi-users leaves out. Never commits."""

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.auth.manager import UserManager
from app.auth.notices import enqueue_notice
from app.auth.passwords import verify_password
from app.auth.principal import Principal, SessionUser
from app.auth.sessions.types import SessionStore
from app.db import get_row
from app.errors import AppError, ErrorCode
from app.models import User
from app.users.schemas import UserUpdateMe

# Changing these needs the current password (ASVS 6.2.3, 7.5.1): a borrowed or
# stolen session alone must not be enough to take the account over.
SENSITIVE = frozenset({"password"})


async def get_profile(session: AsyncSession, user_id: int, viewer: SessionUser | None) -> tuple[User, bool]:
    """The user and whether `viewer` may see the full record (itself or an admin)."""
    user = await get_row(session, User, user_id)
    if user is None:
        raise AppError(ErrorCode.NOT_FOUND, "User not found.")
    full = viewer is not None and (viewer.id == user.id or viewer.is_superuser)
    return user, full


async def update_me(
    session: AsyncSession,
    manager: UserManager,
    store: SessionStore,
    principal: Principal,
    data: UserUpdateMe,
    *,
    reauth_max_age: int,
    request: HTTPConnection | None = None,
) -> User:
    changes = data.create_update_dict()
    user = await get_row(session, User, principal.user.id)
    if user is None:  # deleted between the session check and now
        raise AppError(ErrorCode.NOT_AUTHENTICATED)
    if "password" in changes and principal.user.has_second_factor:
        # API.md section 9: with a second factor, the password alone no longer proves it is you.
        principal.require_fresh(reauth_max_age)
    if SENSITIVE & changes.keys():
        if data.current_password is None:
            raise AppError(
                ErrorCode.INVALID_CURRENT_PASSWORD,
                "current_password is required to change the password.",
            )
        verified, _ = await verify_password(data.current_password, user.hashed_password)
        if not verified:
            raise AppError(ErrorCode.INVALID_CURRENT_PASSWORD)
    if not changes:
        return user
    updated = await manager.apply_changes(data, user, safe=True)
    if "password" in changes:
        # Before the commit: if the store is unreachable nothing is changed (503),
        # rather than a new password with the old sessions still alive.
        revoked = await store.revoke_user(user.id, keep=principal.login_id)
        details = {"sessions_revoked": revoked}
        enqueue_notice(session, request, updated, "password_changed", details=details)
    return updated
