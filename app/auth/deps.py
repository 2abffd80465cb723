"""Who is calling: the session cookie, one store round trip, no database query on a hit;
and the parts of the login flows (service.py) for one request."""

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from app.auth.account.devices import DEVICES
from app.auth.backend import BACKEND
from app.auth.cookies import COOKIES
from app.auth.csrf import CSRF
from app.auth.mfa.challenges import CHALLENGES
from app.auth.principal import Principal, SessionUser, snapshot
from app.auth.ratelimit import RATE_LIMITS
from app.auth.service import Auth
from app.auth.sessions import SESSION_STORE
from app.cookie_header import cookies_of
from app.db import SESSIONMAKER, get_row
from app.errors import AppError, ErrorCode
from app.metrics import METRICS
from app.models import User
from app.state import SETTINGS, state_of


async def _load_user(request: HTTPConnection, user_id: int) -> SessionUser | None:
    """Cache miss: read the user once and cache it, unless a newer snapshot landed meanwhile."""
    state = state_of(request)
    async with state[SESSIONMAKER]() as session:
        user = await get_row(session, User, user_id)
    if user is None:
        return None
    fresh = snapshot(user)
    await state[SESSION_STORE].cache_user(fresh, only_if_absent=True)
    return fresh


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
    user = active.user or await _load_user(request, active.user_id)
    # A deactivated user's sessions stop working at once, whatever their TTL.
    if user is None or not user.is_active:
        return None
    return Principal(user, active.login_id, active.assurance)


# Each dependency below is one function rather than a chain of sub-dependencies:
# FastAPI's dependency solving is a measurable share of an authenticated request.


async def current_principal(request: Request) -> Principal:
    principal = await authenticate(request)
    if principal is None:
        raise AppError(ErrorCode.NOT_AUTHENTICATED)
    return principal


async def current_user(request: Request) -> SessionUser:
    return (await current_principal(request)).user


async def optional_user(request: Request) -> SessionUser | None:
    principal = await authenticate(request)
    return principal.user if principal else None


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
SuperUser = Annotated[SessionUser, Depends(current_superuser)]
AuthDep = Annotated[Auth, Depends(get_auth)]
