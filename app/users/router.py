from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from app.audit import audit
from app.auth.cookies import CookiesDep
from app.auth.deps import CurrentPrincipal, FreshPrincipal, OptionalUser, ProfileReader
from app.auth.manager import UserManagerDep
from app.auth.ratelimit import per_ip
from app.auth.schemas import UserPublic, UserRead
from app.auth.sessions import StoreDep
from app.auth.sessions.types import MAX_LOGINS_PER_USER
from app.config import Settings
from app.db import SESSIONMAKER, SessionDep
from app.errors import AppError, ErrorCode, responses
from app.security_log import SecurityEvent, record_event_soon
from app.state import SETTINGS, dependency, state_of
from app.users import account, email_change, export, service
from app.users.schemas import (
    AccountExport,
    EmailChange,
    EmailChangeConfirm,
    EmailChangePending,
    SessionRead,
    UserUpdateMe,
    session_reads,
)

SettingsDep = Annotated[Settings, Depends(dependency(SETTINGS))]

router = APIRouter(prefix="/users", tags=["users"])


@router.get(
    "/me",
    response_model=UserRead,
    summary="The logged-in user",
    responses=responses(ErrorCode.NOT_AUTHENTICATED),
)
async def read_me(user: ProfileReader) -> Response:
    # Served from the session store's snapshot, with no database query, and
    # serialised once (returning a Response skips FastAPI's response-model pass).
    return Response(UserRead.model_validate(user).model_dump_json(), media_type="application/json")


@router.patch(
    "/me",
    response_model=UserRead,
    summary="Change your username or password",
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
    """`current_password` is required to change the `password`, which ends every other
    session of the user (this one stays). The email is changed through
    `POST /users/me/email`, confirmed from the new address."""
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
    return session_reads(logins[offset : offset + limit], principal.login_id)


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


@router.post(
    "/me/email",
    response_model=EmailChangePending,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Ask to change your email: a confirmation link goes to the new address",
    responses=responses(
        ErrorCode.INVALID_CURRENT_PASSWORD,
        ErrorCode.NOT_AUTHENTICATED,
        ErrorCode.CSRF_FAILED,
        ErrorCode.USER_ALREADY_EXISTS,
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.RATE_LIMITED,
    ),
    dependencies=[per_ip()],  # it checks a password: guesses are counted
)
async def request_email_change(
    request: Request,
    body: EmailChange,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
) -> EmailChangePending:
    """Nothing changes yet: the new address gets a link (single use, 24 hours; a later
    request replaces it) and the current one an `email_change_requested` notice."""
    await email_change.request_change(
        session, request, principal, str(body.email), body.current_password, settings.public_url
    )
    return EmailChangePending(detail="Confirmation sent to the new address", pending_email=str(body.email))


@router.post(
    "/me/email/confirm",
    response_model=UserRead,
    summary="Confirm a new email with the token from its link",
    responses=responses(
        ErrorCode.INVALID_TOKEN,
        ErrorCode.USER_ALREADY_EXISTS,
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.CSRF_FAILED,
    ),
    dependencies=[per_ip()],
)
async def confirm_email_change(request: Request, body: EmailChangeConfirm, session: SessionDep) -> UserRead:
    """No session needed: the link may be opened in another browser. The account's email
    becomes the new one, verified; the old address gets an `email_changed` notice."""
    return UserRead.model_validate(await email_change.confirm_change(session, request, body.token))


@router.get(
    "/me/export",
    response_model=AccountExport,
    summary="Download everything the service holds about you (fresh session)",
    responses=responses(ErrorCode.NOT_AUTHENTICATED, ErrorCode.REAUTHENTICATION_REQUIRED),
)
async def export_me(request: Request, store: StoreDep, principal: FreshPrincipal) -> Response:
    """Your user, items, sessions, passkeys, tokens and security log, as one JSON file
    (`Content-Disposition: attachment`), streamed from one snapshot. No hash, secret or
    token is in it."""
    taken_at, body = await export.export(state_of(request)[SESSIONMAKER], store, principal)
    disposition = f'attachment; filename="{export.filename(taken_at)}"'
    return StreamingResponse(
        body, media_type="application/json", headers={"Content-Disposition": disposition}
    )


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete your account (fresh session)",
    responses=responses(
        ErrorCode.NOT_AUTHENTICATED,
        ErrorCode.REAUTHENTICATION_REQUIRED,
        ErrorCode.LAST_SUPERUSER,
        ErrorCode.CSRF_FAILED,
    ),
)
async def delete_me(
    request: Request, session: SessionDep, store: StoreDep, cookies: CookiesDep, principal: FreshPrincipal
) -> Response:
    """Your items (announced as `item.deleted`), sessions (their sockets closed), passkeys
    and tokens go with the account; an `account_deleted` notice goes to its address; the
    security log keeps that the account was deleted, without the email. The last active
    superuser cannot (409)."""
    await account.delete(session, store, request, principal)
    audit(request, "account_deleted", "success", actor=principal.user.id)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    cookies.clear_all(response)
    return response
