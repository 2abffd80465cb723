"""Superuser routes. The superuser guard is applied once, where app/api/__init__.py includes
this router; the handlers still ask for `SuperUser` to know the actor (FastAPI runs
the dependency once per request and hands both the same result)."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin import service
from app.admin.schemas import AdminUserUpdate
from app.audit import audit
from app.auth.deps import FreshSuperUser, SuperUser
from app.auth.manager import UserManagerDep
from app.auth.schemas import UserRead
from app.auth.sessions import StoreDep
from app.db import MAX_ID, SessionDep, after_commit, after_rollback
from app.errors import AppError, ErrorCode, responses
from app.outage import is_outage
from app.schemas import NO_NUL, Page

router = APIRouter(prefix="/admin", tags=["admin"])

GUARD = (
    ErrorCode.NOT_AUTHENTICATED,
    ErrorCode.FORBIDDEN,
    ErrorCode.MFA_ENROLLMENT_REQUIRED,
    ErrorCode.VALIDATION_ERROR,
)
# Every admin PATCH and DELETE also needs a fresh session (API.md section 9).
WRITE = (*GUARD, ErrorCode.CSRF_FAILED, ErrorCode.REAUTHENTICATION_REQUIRED)


@contextmanager
def audited(
    request: Request, session: AsyncSession, action: str, actor: int, target: int | None, **fields: Any
) -> Iterator[dict[str, Any]]:
    """One `app.audit` record per admin action, with the outcome the admin got: success
    once the change has committed; denied (the last superuser) or failed (unknown user,
    taken name, weak password, an outage, a commit that failed) when nothing did. The
    caller may add fields to the yielded dict; field names and counts only, never a
    submitted value."""
    event = f"admin.{action}"
    # A commit that fails after the block is an outage in all but name: PostgreSQL went away.
    why = {"outcome": "failed", "code": ErrorCode.SERVICE_UNAVAILABLE.value}

    async def failed() -> None:
        audit(
            request,
            event,
            why["outcome"],
            actor=actor,
            target=target,
            level=logging.WARNING,
            **{"code": why["code"], **fields},
        )

    async def succeeded() -> None:
        audit(request, event, "success", actor=actor, target=target, **fields)

    after_rollback(session, failed)
    try:
        yield fields
    except AppError as exc:
        why.update(
            outcome="denied" if exc.code is ErrorCode.LAST_SUPERUSER else "failed", code=exc.code.value
        )
        raise
    except Exception as exc:
        if not is_outage(exc):
            why["code"] = ErrorCode.INTERNAL_ERROR.value
        raise
    after_commit(session, succeeded)


@router.get(
    "/users",
    response_model=Page[UserRead],
    summary="List users (admin)",
    responses=responses(*GUARD),
)
async def list_users(
    request: Request,
    session: SessionDep,
    admin: SuperUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    q: Annotated[
        str | None,
        Query(max_length=320, pattern=NO_NUL, description="Matches username or email, any case."),
    ] = None,
    is_active: Annotated[bool | None, Query(description="Only active (`true`) or inactive users.")] = None,
) -> Page[UserRead]:
    """Ordered by id. `total` counts every user matching `q` and `is_active`."""
    with audited(request, session, "list_users", admin.id, None):
        users, total = await service.list_users(session, q=q, is_active=is_active, limit=limit, offset=offset)
    return Page[UserRead](
        items=[UserRead.model_validate(u) for u in users], total=total, limit=limit, offset=offset
    )


@router.get(
    "/users/{user_id}",
    response_model=UserRead,
    summary="Read any user (admin)",
    responses=responses(*GUARD, ErrorCode.NOT_FOUND),
)
async def get_user(request: Request, user_id: int, session: SessionDep, admin: SuperUser) -> UserRead:
    with audited(request, session, "get_user", admin.id, user_id):
        user = await service.get_user(session, user_id)
    return UserRead.model_validate(user)


@router.patch(
    "/users/{user_id}",
    response_model=UserRead,
    summary="Change any user (admin)",
    responses=responses(
        *WRITE,
        ErrorCode.INVALID_PASSWORD,
        ErrorCode.NOT_FOUND,
        ErrorCode.USER_ALREADY_EXISTS,
        ErrorCode.LAST_SUPERUSER,
    ),
)
async def update_user(
    request: Request,
    user_id: int,
    data: AdminUserUpdate,
    session: SessionDep,
    manager: UserManagerDep,
    store: StoreDep,
    admin: FreshSuperUser,
) -> UserRead:
    """Omitted fields stay as they are; null is refused. Deactivation, demotion or a new
    password ends every session of the user at once. A new email is unverified unless
    `is_verified` is sent too; the old address gets an `email_changed` notice. The last active superuser cannot be deactivated or demoted
    (409 `last_superuser`), not even by themselves."""
    with audited(request, session, "update_user", admin.id, user_id, fields=sorted(data.changes())):
        user = await service.update_user(
            session, manager, store, user_id, data, actor_id=admin.id, request=request
        )
    return UserRead.model_validate(user)


@router.delete(
    "/users/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete any user, with their items and sessions (admin)",
    responses=responses(*WRITE, ErrorCode.NOT_FOUND, ErrorCode.LAST_SUPERUSER),
)
async def delete_user(
    request: Request, user_id: int, session: SessionDep, store: StoreDep, admin: FreshSuperUser
) -> Response:
    """The last active superuser cannot be deleted (409 `last_superuser`)."""
    with audited(request, session, "delete_user", admin.id, user_id):
        await service.delete_user(session, store, user_id, actor_id=admin.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/users/{user_id}/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End every session of a user (admin)",
    responses=responses(*WRITE, ErrorCode.NOT_FOUND),
)
async def revoke_user_sessions(
    request: Request, user_id: int, session: SessionDep, store: StoreDep, admin: FreshSuperUser
) -> Response:
    """The user stays; they log in again with their password. Their personal access tokens
    are revoked too."""
    with audited(request, session, "revoke_sessions", admin.id, user_id) as fields:
        fields["sessions_revoked"] = await service.revoke_sessions(
            session, store, user_id, actor_id=admin.id, request=request
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
