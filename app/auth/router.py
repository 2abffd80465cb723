"""Auth routes (API.md section 3): CSRF token, register (fastapi-users), login, logout."""

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from fastapi_users.router import get_register_router

from app.auth.backend import StrategyDep, UserManagerDep, client_ip, get_user_manager
from app.auth.schemas import CsrfRead, Detail, LoginRead, LoginRequest
from app.errors import AppError, ErrorCode, error_response, responses
from app.users.schemas import UserCreate, UserRead

security_log = logging.getLogger("app.security")

router = APIRouter(prefix="/auth", tags=["auth"])

# fastapi-users' register route, in our envelope (its errors are mapped in app/errors.py).
register_router = APIRouter(prefix="/auth", tags=["auth"])
register_router.include_router(
    get_register_router(get_user_manager, UserRead, UserCreate),  # type: ignore[arg-type]
    responses=responses(
        ErrorCode.INVALID_PASSWORD,
        ErrorCode.USER_ALREADY_EXISTS,
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.CSRF_FAILED,
    ),
)


def _set_csrf(request: Request, response: JSONResponse, token: str) -> None:
    request.app.state.cookies.set_csrf(response, token, request.app.state.csrf.max_age)


@router.get("/csrf", response_model=CsrfRead, summary="Get a CSRF token (and its cookie)")
async def get_csrf_token(request: Request) -> JSONResponse:
    """Send the returned value as `X-CSRF-Token` on every POST, PUT, PATCH and DELETE."""
    token = request.app.state.csrf.issue(request.cookies.get(request.app.state.cookies.session))
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
    ),
)
async def login(
    request: Request, body: LoginRequest, manager: UserManagerDep, strategy: StrategyDep
) -> JSONResponse:
    """Sets the session cookie and a fresh CSRF cookie. A session cookie sent with the
    request is revoked: a session the server did not issue at this login is never kept."""
    state = request.app.state
    user = await manager.authenticate_login(body.username, body.password)
    if user is None:
        security_log.info(
            "login failed", extra={"event": "login", "outcome": "failure", "ip": client_ip(request)}
        )
        raise AppError(ErrorCode.INVALID_CREDENTIALS)
    # Only after the right password: otherwise this answer would reveal the account.
    if not user.is_active:
        security_log.info(
            "login refused: inactive",
            extra={"event": "login", "outcome": "inactive", "actor": user.id, "ip": client_ip(request)},
        )
        raise AppError(ErrorCode.USER_INACTIVE)

    presented = request.cookies.get(state.cookies.session)
    if presented:
        await state.session_store.revoke(presented)
    token = await strategy.write_token(user)

    csrf_token = state.csrf.issue(token)
    body_out = LoginRead(
        user=UserRead.model_validate(user),
        csrf_token=csrf_token,
        expires_in=state.settings.access_token_seconds,
    )
    response = JSONResponse(body_out.model_dump(mode="json"))
    state.transport.set_cookie(response, token)
    _set_csrf(request, response, csrf_token)
    await manager.on_after_login(user, request, response)
    security_log.info(
        "login", extra={"event": "login", "outcome": "success", "actor": user.id, "ip": client_ip(request)}
    )
    return response


@router.post(
    "/logout",
    response_model=Detail,
    summary="Log out: revoke this session and clear the cookies",
    responses=responses(ErrorCode.NOT_AUTHENTICATED, ErrorCode.CSRF_FAILED),
)
async def logout(request: Request) -> JSONResponse:
    """The cookies are cleared even when the session was already gone (then 401)."""
    state = request.app.state
    token = request.cookies.get(state.cookies.session)
    revoked = bool(token) and await state.session_store.revoke(token)
    if revoked:
        response = JSONResponse({"detail": "Logged out"})
        security_log.info("logout", extra={"event": "logout", "outcome": "success", "ip": client_ip(request)})
    else:
        response = error_response(ErrorCode.NOT_AUTHENTICATED)
    state.transport.clear_cookie(response)
    state.cookies.clear_refresh(response)
    state.cookies.clear_csrf(response)
    return response
