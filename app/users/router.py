from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.audit import audit
from app.auth.cookies import CookiesDep
from app.auth.deps import CurrentPrincipal, CurrentUser, OptionalUser
from app.auth.manager import UserManagerDep
from app.auth.schemas import UserPublic, UserRead
from app.auth.sessions import StoreDep
from app.auth.sessions.types import MAX_LOGINS_PER_USER
from app.config import Settings
from app.db import SESSIONMAKER, SessionDep
from app.errors import AppError, ErrorCode, responses
from app.security_log import SecurityEvent, record_event_soon
from app.state import SETTINGS, dependency, state_of
from app.users import service
from app.users.schemas import SessionRead, UserUpdateMe

SettingsDep = Annotated[Settings, Depends(dependency(SETTINGS))]

router = APIRouter(prefix="/users", tags=["users"])


@router.get(
    "/me",
    response_model=UserRead,
    summary="The logged-in user",
    responses=responses(ErrorCode.NOT_AUTHENTICATED),
)
async def read_me(user: CurrentUser) -> Response:
    # Served from the session store's snapshot, with no database query, and
    # serialised once (returning a Response skips FastAPI's response-model pass).
    return Response(UserRead.model_validate(user).model_dump_json(), media_type="application/json")


@router.patch(
    "/me",
    response_model=UserRead,
    summary="Change your username, email or password",
    responses=responses(
        ErrorCode.INVALID_CURRENT_PASSWORD,
        ErrorCode.INVALID_PASSWORD,
        ErrorCode.NOT_AUTHENTICATED,
        ErrorCode.CSRF_FAILED,
        ErrorCode.USER_ALREADY_EXISTS,
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.REAUTHENTICATION_REQUIRED,
    ),
)
async def update_me(
    request: Request,
    data: UserUpdateMe,
    session: SessionDep,
    manager: UserManagerDep,
    store: StoreDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
) -> UserRead:
    """`current_password` is required to change `email` or `password`. A new password
    ends every other session of the user; this one stays. A new email is unverified."""
    user = await service.update_me(
        session,
        manager,
        store,
        principal,
        data,
        reauth_max_age=settings.reauth_max_age_seconds,
        request=request,
    )
    return UserRead.model_validate(user)


@router.get(
    "/me/sessions",
    response_model=list[SessionRead],
    summary="Your sessions (one per login), oldest first",
    responses=responses(ErrorCode.NOT_AUTHENTICATED, ErrorCode.VALIDATION_ERROR),
)
async def list_my_sessions(
    response: Response,
    store: StoreDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=MAX_LOGINS_PER_USER)] = MAX_LOGINS_PER_USER,
    offset: Annotated[int, Query(ge=0, le=MAX_LOGINS_PER_USER)] = 0,
) -> list[SessionRead]:
    """At most MAX_LOGINS_PER_USER (50) sessions exist, so the default page is all of
    them; `limit` and `offset` page through them, and `X-Total-Count` says how many
    there are (the body stays the list of API.md section 4)."""
    logins = await store.list_user(principal.user.id)
    response.headers["X-Total-Count"] = str(len(logins))
    return [
        SessionRead(
            id=login.id,
            created_at=login.created_at,
            last_seen_at=login.last_seen_at,
            user_agent=login.user_agent,
            ip=login.ip,
            current=login.id == principal.login_id,
            aal=login.aal,
            amr=list(login.amr),
        )
        for login in logins[offset : offset + limit]
    ]


@router.delete(
    "/me/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End one of your sessions",
    responses=responses(ErrorCode.NOT_AUTHENTICATED, ErrorCode.NOT_FOUND, ErrorCode.CSRF_FAILED),
)
async def delete_my_session(
    request: Request, session_id: str, store: StoreDep, cookies: CookiesDep, principal: CurrentPrincipal
) -> Response:
    """Ending the current session is a logout: its cookies are cleared too."""
    if not await store.revoke_login(principal.user.id, session_id):
        raise AppError(ErrorCode.NOT_FOUND, "Session not found.")
    audit(request, "session_revoked", "success", actor=principal.user.id, login=session_id)
    details = {"session_id": session_id}
    record_event_soon(
        state_of(request)[SESSIONMAKER], request, principal.user.id, SecurityEvent.SESSION_REVOKED, details
    )
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    if session_id == principal.login_id:
        cookies.clear_all(response)
    return response


@router.get(
    "/{user_id}",
    response_model=UserRead | UserPublic,
    summary="A user's public profile (the full record for the user itself and admins)",
    responses=responses(ErrorCode.NOT_FOUND, ErrorCode.VALIDATION_ERROR),
)
async def read_user(user_id: int, session: SessionDep, viewer: OptionalUser) -> UserRead | UserPublic:
    user, full = await service.get_profile(session, user_id, viewer)
    return UserRead.model_validate(user) if full else UserPublic.model_validate(user)
