"""Who is calling: the session cookie, one store round trip, no database query on a hit;
and the parts of the login flows (service.py) for one request."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from app.auth.account.devices import DEVICES
from app.auth.backend import BACKEND
from app.auth.cache import load_snapshot
from app.auth.cookies import COOKIES
from app.auth.csrf import CSRF
from app.auth.mfa.challenges import CHALLENGES
from app.auth.principal import Principal, SessionUser
from app.auth.ratelimit import RATE_LIMITS
from app.auth.service import Auth
from app.auth.sessions import SESSION_STORE
from app.auth.tokens import Scope
from app.auth.tokens import service as tokens
from app.cookie_header import cookies_of, script_bearer
from app.db import SESSIONMAKER
from app.errors import AppError, ErrorCode
from app.metrics import METRICS
from app.state import SETTINGS, state_of


async def authenticate(request: HTTPConnection) -> Principal | None:
    """The caller's live session and active user, or None.

    Takes any connection so that the live-updates WebSocket (app/live) authenticates
    exactly as an HTTP request does: same cookie, same store read, same rules."""
    state = state_of(request)
    token = cookies_of(request.scope).get(state[COOKIES].session)
    if not token:
        return None
    active = await state[SESSION_STORE].read(token)
    if active is None:
        return None
    user = active.user or await load_snapshot(state[SESSIONMAKER], state[SESSION_STORE], active.user_id)
    # A deactivated user's sessions stop working at once, whatever their TTL.
    if user is None or not user.is_active:
        return None
    return Principal(user, active.login_id, active.assurance)


def bearer_credentials(request: HTTPConnection) -> str | None:
    """The token of an `Authorization: Bearer` header, when the request carries no session
    cookie: a request with one is authenticated by the cookie alone (API.md section 11)."""
    return script_bearer(
        request.scope, request.headers.get("authorization"), state_of(request)[COOKIES].session
    )


async def caller(request: Request, scope: Scope | None) -> Principal | None:
    """The session's principal, or a bearer token's when its scopes hold `scope`: a route
    that names no scope refuses every token (403 `insufficient_scope`), whoever owns it."""
    credentials = bearer_credentials(request)
    if credentials is None:
        return await authenticate(request)
    principal = await tokens.authenticate(request, credentials)
    if scope is None or principal.scopes is None or scope not in principal.scopes:
        raise AppError(ErrorCode.INSUFFICIENT_SCOPE, details={"required": scope})
    return principal


# Each dependency below is one function rather than a chain of sub-dependencies:
# FastAPI's dependency solving is a measurable share of an authenticated request.


async def current_principal(request: Request) -> Principal:
    principal = await caller(request, None)
    if principal is None:
        raise AppError(ErrorCode.NOT_AUTHENTICATED)
    return principal


async def current_user(request: Request) -> SessionUser:
    return (await current_principal(request)).user


async def optional_user(request: Request) -> SessionUser | None:
    principal = await caller(request, None)
    return principal.user if principal else None


def user_with_scope(scope: Scope) -> Callable[[Request], Awaitable[SessionUser]]:
    """The caller, by session or by a token with `scope` (API.md section 11)."""

    async def scoped_user(request: Request) -> SessionUser:
        principal = await caller(request, scope)
        if principal is None:
            raise AppError(ErrorCode.NOT_AUTHENTICATED)
        return principal.user

    return scoped_user


def optional_user_with_scope(scope: Scope) -> Callable[[Request], Awaitable[SessionUser | None]]:
    """As `user_with_scope`, anonymous allowed."""

    async def scoped_optional_user(request: Request) -> SessionUser | None:
        principal = await caller(request, scope)
        return principal.user if principal else None

    return scoped_optional_user


profile_reader = user_with_scope(Scope.PROFILE_READ)
items_reader = optional_user_with_scope(Scope.ITEMS_READ)
items_writer = user_with_scope(Scope.ITEMS_WRITE)


def require_fresh(request: Request, principal: Principal) -> Principal:
    """403 `reauthentication_required` unless the session is fresh (API.md section 9),
    naming what this user can re-authenticate with."""
    principal.require_fresh(state_of(request)[SETTINGS].reauth_max_age_seconds)
    return principal


async def fresh_principal(request: Request) -> Principal:
    return require_fresh(request, await current_principal(request))


async def superuser_principal(request: Request) -> Principal:
    """A superuser, with a second factor while ADMIN_REQUIRE_MFA is on: one without can
    still log in and enrol one, but no admin route answers them."""
    principal = await current_principal(request)
    if not principal.user.is_superuser:
        raise AppError(ErrorCode.FORBIDDEN)
    if state_of(request)[SETTINGS].require_admin_mfa and not principal.user.has_second_factor:
        raise AppError(ErrorCode.MFA_ENROLLMENT_REQUIRED)
    return principal


async def current_superuser(request: Request) -> SessionUser:
    return (await superuser_principal(request)).user


async def fresh_superuser(request: Request) -> SessionUser:
    """Every admin PATCH and DELETE: a superuser on a fresh session."""
    return require_fresh(request, await superuser_principal(request)).user


async def get_auth(request: Request) -> Auth:
    state = state_of(request)
    return Auth(
        request=request,
        settings=state[SETTINGS],
        store=state[SESSION_STORE],
        csrf=state[CSRF],
        limits=state[RATE_LIMITS],
        backend=state[BACKEND],
        metrics=state[METRICS],
        sessionmaker=state[SESSIONMAKER],
        challenges=state[CHALLENGES],
        devices=state[DEVICES],
    )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
FreshPrincipal = Annotated[Principal, Depends(fresh_principal)]
FreshSuperUser = Annotated[SessionUser, Depends(fresh_superuser)]
CurrentUser = Annotated[SessionUser, Depends(current_user)]
OptionalUser = Annotated[SessionUser | None, Depends(optional_user)]
# The routes a personal access token can reach, each by the scope it names.
ProfileReader = Annotated[SessionUser, Depends(profile_reader)]
ItemsReader = Annotated[SessionUser | None, Depends(items_reader)]
ItemsWriter = Annotated[SessionUser, Depends(items_writer)]
SuperUser = Annotated[SessionUser, Depends(current_superuser)]
AuthDep = Annotated[Auth, Depends(get_auth)]
