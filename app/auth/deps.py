"""Who is calling: the session cookie, one store round trip, no database query on a hit."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from app.auth.cache import snapshot
from app.auth.sessions import SessionUser
from app.errors import AppError, ErrorCode
from app.models import User


@dataclass(frozen=True, slots=True)
class Principal:
    user: SessionUser
    login_id: str  # the login this session belongs to (what /users/me/sessions lists)


async def _load_user(request: HTTPConnection, user_id: int) -> SessionUser | None:
    """Cache miss: read the user once and cache it, unless a newer snapshot landed meanwhile."""
    state = request.app.state
    async with state.sessionmaker() as session:
        user = await session.get(User, user_id)
    if user is None:
        return None
    fresh = snapshot(user)
    await state.session_store.cache_user(fresh, only_if_absent=True)
    return fresh


async def authenticate(request: HTTPConnection) -> Principal | None:
    """The caller's live session and active user, or None.

    Takes any connection so that the live-updates WebSocket (app/live) authenticates
    exactly as an HTTP request does: same cookie, same store read, same rules."""
    state = request.app.state
    token = request.cookies.get(state.cookies.session)
    if not token:
        return None
    active = await state.session_store.read(token)
    if active is None:
        return None
    user = active.user or await _load_user(request, active.user_id)
    # A deactivated user's sessions stop working at once, whatever their TTL.
    if user is None or not user.is_active:
        return None
    return Principal(user, active.login_id)


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


async def current_superuser(request: Request) -> SessionUser:
    user = await current_user(request)
    if not user.is_superuser:
        raise AppError(ErrorCode.FORBIDDEN)
    return user


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
CurrentUser = Annotated[SessionUser, Depends(current_user)]
OptionalUser = Annotated[SessionUser | None, Depends(optional_user)]
SuperUser = Annotated[SessionUser, Depends(current_superuser)]
