"""fastapi-users' own routers (register, reset, verify), documented as we answer them."""

from fastapi import APIRouter
from fastapi.routing import APIRoute

from app.errors import ErrorCode, responses


def in_our_envelope(
    router: APIRouter,
    errors: dict[str, tuple[ErrorCode, ...]],
    summaries: dict[str, str],
) -> APIRouter:
    """A fastapi-users router documented as we answer: its errors in our envelope (mapped
    in app/errors.py) and readable summaries. The library declares its own `{"detail": ...}`
    400 bodies, and a route's own `responses` win over include_router's, so they are
    replaced. A route a later library version adds is a KeyError here, not an undocumented route."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            route.summary = summaries[route.name]
            route.responses = responses(
                *errors[route.name],
                ErrorCode.VALIDATION_ERROR,
                ErrorCode.CSRF_FAILED,
                ErrorCode.RATE_LIMITED,
            )
    return router
