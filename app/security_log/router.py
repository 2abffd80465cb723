"""The security log's routes (API.md section 10): `GET /users/me/security-events` and
`GET /admin/users/{id}/security-events`.

A factory, as fastapi-users' routers are: app/auth records events here, so this package
cannot import app/auth back (one-way arrows, tests/test_architecture.py). app/api passes in
the dependencies that name the caller, and includes the admin router under the admin
guard, as it does every admin route."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Query, Request

from app.audit import audit
from app.db import MAX_ID, SessionDep
from app.errors import AppError, ErrorCode, responses
from app.models import SecurityLogEntry
from app.schemas import Page
from app.security_log import service
from app.security_log.schemas import SecurityEventRead

ADMIN_GUARD = (
    ErrorCode.NOT_AUTHENTICATED,
    ErrorCode.FORBIDDEN,
    ErrorCode.MFA_ENROLLMENT_REQUIRED,
    ErrorCode.VALIDATION_ERROR,
)


class Caller(Protocol):
    @property
    def id(self) -> int: ...


def _page(rows: list[SecurityLogEntry], total: int, limit: int, offset: int) -> Page[SecurityEventRead]:
    items = [SecurityEventRead.model_validate(row) for row in rows]
    return Page[SecurityEventRead](items=items, total=total, limit=limit, offset=offset)


Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]


def create_routers(
    current_user: Callable[..., Awaitable[Caller]], current_superuser: Callable[..., Awaitable[Caller]]
) -> tuple[APIRouter, APIRouter]:
    """(the user's router, the admin router): `current_user` names a signed-in caller
    (401 otherwise), `current_superuser` an admin (app/api also guards with it)."""
    mine = APIRouter(prefix="/users/me", tags=["security log"])
    admin = APIRouter(prefix="/admin", tags=["admin"])

    @mine.get(
        "/security-events",
        response_model=Page[SecurityEventRead],
        summary="Your security log, newest first",
        responses=responses(ErrorCode.NOT_AUTHENTICATED, ErrorCode.VALIDATION_ERROR),
    )
    async def list_my_security_events(
        session: SessionDep,
        user: Annotated[Caller, Depends(current_user)],
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> Page[SecurityEventRead]:
        """Logins, failed logins (a wrong password for your account), logouts, ended
        sessions, a reused refresh token, re-authentications, and every change to how the
        account is protected, each with the ip and user agent it came from. `total` counts
        them all; events older than the retention period (SECURITY_LOG_RETENTION_DAYS) are
        gone."""
        rows, total = await service.events_of(session, user.id, limit=limit, offset=offset)
        return _page(rows, total, limit, offset)

    @admin.get(
        "/users/{user_id}/security-events",
        response_model=Page[SecurityEventRead],
        summary="A user's security log, newest first (admin)",
        responses=responses(*ADMIN_GUARD, ErrorCode.NOT_FOUND),
    )
    async def list_user_security_events(
        request: Request,
        user_id: int,
        session: SessionDep,
        actor: Annotated[Caller, Depends(current_superuser)],
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> Page[SecurityEventRead]:
        """As `GET /users/me/security-events`, for that user; 404 for an unknown one."""
        try:
            rows, total = await service.events_of_user(session, user_id, limit=limit, offset=offset)
        except AppError as exc:
            audit(
                request,
                "admin.list_security_events",
                "failed",
                actor=actor.id,
                target=user_id,
                code=exc.code.value,
            )
            raise
        audit(request, "admin.list_security_events", "success", actor=actor.id, target=user_id)
        return _page(rows, total, limit, offset)

    return mine, admin
