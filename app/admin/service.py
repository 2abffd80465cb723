"""Admin rules (API.md section 5): the last active superuser stays, and a user who
loses access loses their sessions before the change commits. Never commits."""

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.admin.schemas import AdminUserUpdate
from app.auth import repository as users
from app.auth.manager import UserManager
from app.auth.notices import enqueue_notice
from app.auth.sessions.types import SessionStore
from app.auth.tokens import service as tokens
from app.db import MAX_ID, get_row
from app.errors import AppError, ErrorCode
from app.items import service as items_service
from app.models import User


async def list_users(
    session: AsyncSession, *, q: str | None, is_active: bool | None, limit: int, offset: int
) -> tuple[list[User], int]:
    return await users.list_users(session, q=q, is_active=is_active, limit=limit, offset=offset)


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await get_row(session, User, user_id)
    if user is None:
        raise AppError(ErrorCode.NOT_FOUND, "User not found.")
    return user


async def _locked_superusers(session: AsyncSession, actor_id: int) -> set[int]:
    """The active superusers, locked; 403 if the acting admin is no longer one of them.

    Every admin change takes this lock first: the session that let the actor in was
    read before it, so an admin demoted or deactivated by a concurrent request (whose
    commit the lock waits for) acts no further.
    """
    superusers = await users.lock_active_superusers(session)
    if actor_id not in superusers:
        raise AppError(ErrorCode.FORBIDDEN)
    return superusers


async def _guarded_user(session: AsyncSession, user_id: int, actor_id: int) -> User:
    """The user, read after locking the active superusers; 409 if they are the last one.

    For a change that would take `user_id` out of the active superusers. The lock
    comes first so that the user and the count are both read after any concurrent
    demotion has committed.
    """
    if not 1 <= user_id <= MAX_ID:
        raise AppError(ErrorCode.NOT_FOUND, "User not found.")
    superusers = await _locked_superusers(session, actor_id)
    user = await get_user(session, user_id)
    if superusers == {user.id}:
        raise AppError(ErrorCode.LAST_SUPERUSER)
    return user


async def update_user(
    session: AsyncSession,
    manager: UserManager,
    store: SessionStore,
    user_id: int,
    data: AdminUserUpdate,
    *,
    actor_id: int,
    request: HTTPConnection | None = None,
) -> User:
    changes = data.changes()
    if changes.get("is_active") is False or changes.get("is_superuser") is False:
        user = await _guarded_user(session, user_id, actor_id)
    else:
        await _locked_superusers(session, actor_id)
        user = await get_user(session, user_id)
    if not changes:
        return user
    was_active, was_superuser, old_email = user.is_active, user.is_superuser, user.email
    # The manager checks uniqueness, applies the password policy and hashes off
    # the event loop, exactly as for registration and PATCH /users/me.
    updated = await manager.apply_changes(data, user, safe=False)
    lost_access = (was_active and not updated.is_active) or (was_superuser and not updated.is_superuser)
    if lost_access or "password" in changes:
        # Before the commit: if the store is unreachable nothing changes (503), rather
        # than a deactivated user, a demoted admin or a new password with live sessions.
        await store.revoke_user(updated.id)
    if was_active and not updated.is_active:
        await tokens.revoke_all(session, request, store, updated.id, "deactivated")
    elif "password" in changes:  # a password set by an admin is a reset by another hand
        await tokens.revoke_all(session, request, store, updated.id, "password_reset")
    if updated.email.lower() != old_email.lower():
        # Set directly (the admin vouches for it), told to the address it replaced.
        details = {"by_admin": actor_id}
        enqueue_notice(session, request, updated, "email_changed", to=old_email, details=details)
    return updated


async def delete_user(session: AsyncSession, store: SessionStore, user_id: int, *, actor_id: int) -> None:
    user = await _guarded_user(session, user_id, actor_id)
    # Before the commit, as above. app/auth/cache.py revokes once more after it, which
    # also ends a login that slipped in between.
    await store.revoke_user(user.id)
    await tokens.revoke_all(session, None, store, user.id, "account_deleted", logged=False)
    await items_service.forget_owner(session, user.id)
    await users.delete(session, user)


async def revoke_sessions(
    session: AsyncSession,
    store: SessionStore,
    user_id: int,
    *,
    actor_id: int,
    request: HTTPConnection | None = None,
) -> int:
    """Every session and personal access token of the user (API.md sections 5 and 11)."""
    await _locked_superusers(session, actor_id)
    user = await get_user(session, user_id)
    await tokens.revoke_all(session, request, store, user.id, "sessions_revoked")
    return await store.revoke_user(user.id)
