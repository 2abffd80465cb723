"""Auth routes (API.md section 3): CSRF token, register (fastapi-users), login, refresh, logout."""

import hashlib
import hmac
from logging import WARNING

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi_users.router import get_register_router
from pydantic import BaseModel

from app.audit import audit
from app.auth.backend import StrategyDep, UserManagerDep, get_user_manager
from app.auth.deps import CurrentPrincipal
from app.auth.library import in_our_envelope
from app.auth.ratelimit import per_ip
from app.auth.schemas import CsrfRead, Detail, LoginRead, LoginRequest, RefreshRead
from app.auth.sessions import RefreshOutcome, Tokens
from app.errors import AppError, ErrorCode, error_response, responses
from app.users.schemas import UserCreate, UserRead

router = APIRouter(prefix="/auth", tags=["auth"])

# fastapi-users' register route, in our envelope (its errors are mapped in app/errors.py).
register_router = APIRouter(prefix="/auth", tags=["auth"])
register_router.include_router(
    in_our_envelope(
        get_register_router(get_user_manager, UserRead, UserCreate),  # type: ignore[arg-type]
        {"register:register": (ErrorCode.INVALID_PASSWORD, ErrorCode.USER_ALREADY_EXISTS)},
        {"register:register": "Register a user (does not log in)"},
    ),
    dependencies=[per_ip()],
)


def _subject(key: str, identifier: str) -> str:
    return hmac.new(key.encode(), identifier.casefold().encode(), hashlib.sha256).hexdigest()[:16]


def _set_csrf(request: Request, response: Response, token: str, max_age: int | None = None) -> None:
    state = request.app.state
    state.cookies.set_csrf(response, token, max_age or state.csrf.max_age)


def _hand_over(request: Request, body: BaseModel, tokens: Tokens, csrf_token: str) -> JSONResponse:
    """The response of a new session (login or refresh): `body` and the three cookies."""
    state = request.app.state
    response = JSONResponse(body.model_dump(mode="json"))
    state.transport.set_cookie(response, tokens.session)
    state.cookies.set_refresh(response, tokens.refresh, tokens.refresh_ttl)
    # Bound to this session, so it expires with it (a fresh one comes with each refresh).
    _set_csrf(request, response, csrf_token, tokens.session_ttl)
    return response


@router.get("/csrf", response_model=CsrfRead, summary="Get a CSRF token (and its cookie)")
async def get_csrf_token(request: Request) -> JSONResponse:
    """Send the returned value as `X-CSRF-Token` on every POST, PUT, PATCH and DELETE.
    The token is bound to the session cookie the browser holds now (none before login);
    while the CSRF cookie holds a token still good for that session, it is that one."""
    state = request.app.state
    session, held = request.cookies.get(state.cookies.session), request.cookies.get(state.cookies.csrf)
    token = held if held and state.csrf.reusable(held, session) else state.csrf.issue(session)
    response = JSONResponse({"csrf_token": token})
    _set_csrf(request, response, token)
    return response


@router.post(
    "/login",
    response_model=LoginRead,
    summary="Log in with username or email",
    responses=responses(
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.USER_INACTIVE,
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.CSRF_FAILED,
        ErrorCode.RATE_LIMITED,
    ),
)
async def login(
    request: Request, body: LoginRequest, manager: UserManagerDep, strategy: StrategyDep
) -> JSONResponse:
    """Sets the session, refresh and CSRF cookies. A session (and its refresh token) sent
    with the request is revoked: a session the server did not issue at this login is never kept."""
    state = request.app.state
    # Counted before the password is checked, so guessing costs the guesser, not the hasher.
    await state.rate_limits.check_login(request, body.username)
    user = await manager.authenticate_login(body.username, body.password)
    if user is None:
        # Which account was tried, without writing the submitted name into the log
        # (it may be a password typed in the wrong field): a keyed hash, stable per name.
        audit(request, "login", "failure", subject=_subject(state.settings.signing_key, body.username))
        raise AppError(ErrorCode.INVALID_CREDENTIALS)
    # Only after the right password: otherwise this answer would reveal the account.
    if not user.is_active:
        audit(request, "login", "inactive", actor=user.id)
        raise AppError(ErrorCode.USER_INACTIVE)

    cookies = state.cookies
    presented, presented_refresh = request.cookies.get(cookies.session), request.cookies.get(cookies.refresh)
    if presented or presented_refresh:
        await state.session_store.end_login(presented, presented_refresh)
    tokens = await strategy.start_login(user)

    csrf_token = state.csrf.issue(tokens.session)
    body_out = LoginRead(
        user=UserRead.model_validate(user), csrf_token=csrf_token, expires_in=tokens.session_ttl
    )
    response = _hand_over(request, body_out, tokens, csrf_token)
    await manager.on_after_login(user, request, response)
    audit(request, "login", "success", actor=user.id, login=tokens.login_id)
    return response


@router.post(
    "/refresh",
    response_model=RefreshRead,
    summary="Rotate the session and refresh tokens",
    responses=responses(ErrorCode.INVALID_REFRESH_TOKEN, ErrorCode.CSRF_FAILED),
)
async def refresh(request: Request) -> JSONResponse:
    """Uses the refresh cookie (sent only to /api/v1/auth). Both tokens are replaced and
    the old pair revoked at once; the login's absolute lifetime is never extended.

    A refresh token that was already rotated is refused: within
    REFRESH_REUSE_GRACE_SECONDS (two tabs refreshing at once) nothing else happens;
    later, it is treated as stolen and the whole login is revoked."""
    state = request.app.state
    token = request.cookies.get(state.cookies.refresh)
    if not token:
        raise AppError(ErrorCode.INVALID_REFRESH_TOKEN)
    settings = state.settings
    result = await state.session_store.refresh(
        token, session_ttl=settings.access_token_seconds, grace=settings.refresh_reuse_grace_seconds
    )
    if result.outcome is RefreshOutcome.ROTATED and result.tokens is not None:
        csrf_token = state.csrf.issue(result.tokens.session)
        body = RefreshRead(csrf_token=csrf_token, expires_in=result.tokens.session_ttl)
        response = _hand_over(request, body, result.tokens, csrf_token)
        audit(request, "refresh", "success", actor=result.user_id, login=result.login_id)
        return response
    if result.outcome is RefreshOutcome.GRACE:
        # A concurrent tab already rotated it: change nothing, not even the cookies,
        # which the browser has meanwhile replaced with the new pair.
        audit(request, "refresh", "grace", actor=result.user_id, login=result.login_id)
        raise AppError(ErrorCode.INVALID_REFRESH_TOKEN)
    if result.outcome is RefreshOutcome.REUSED:
        audit(
            request,
            "refresh_reuse",
            "login_revoked",
            actor=result.user_id,
            login=result.login_id,
            level=WARNING,
        )
    else:
        audit(request, "refresh", "invalid", actor=result.user_id)
    response = error_response(ErrorCode.INVALID_REFRESH_TOKEN)
    request.app.state.cookies.clear_all(response)
    return response


@router.post(
    "/logout",
    response_model=Detail,
    summary="Log out: revoke this session and its refresh token, clear the cookies",
    responses=responses(ErrorCode.NOT_AUTHENTICATED, ErrorCode.CSRF_FAILED),
)
async def logout(request: Request) -> JSONResponse:
    """The cookies are cleared even when the session was already gone (then 401)."""
    state = request.app.state
    store = state.session_store
    session = request.cookies.get(state.cookies.session)
    refresh_token = request.cookies.get(state.cookies.refresh)
    # Both, whichever is still alive: a refresh token outliving its session is a login too.
    ended = await store.end_login(session, refresh_token) if session or refresh_token else None
    if ended is not None:
        response = JSONResponse({"detail": "Logged out"})
        user_id, login_id = ended
        audit(request, "logout", "success", actor=user_id, login=login_id)
    else:
        response = error_response(ErrorCode.NOT_AUTHENTICATED)
    request.app.state.cookies.clear_all(response)
    return response


@router.post(
    "/logout-all",
    response_model=Detail,
    summary="Log out everywhere: revoke every session of the user",
    responses=responses(ErrorCode.NOT_AUTHENTICATED, ErrorCode.CSRF_FAILED),
)
async def logout_all(request: Request, principal: CurrentPrincipal) -> JSONResponse:
    count = await request.app.state.session_store.revoke_user(principal.user.id)
    audit(request, "logout_all", "success", actor=principal.user.id, revoked=count)
    response = JSONResponse({"detail": "Logged out everywhere"})
    request.app.state.cookies.clear_all(response)
    return response
