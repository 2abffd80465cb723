"""fastapi-users' own routers: register, forgot and reset password, request and verify an
email (API.md section 3), on our UserManager (manager.py), documented as we answer them.

The library's errors become our envelope in app/errors.py; the mails and the revocation of
sessions after a reset are UserManager hooks.
"""

from fastapi import APIRouter
from fastapi.routing import APIRoute
from fastapi_users.router import get_register_router, get_reset_password_router, get_verify_router

from app.auth.manager import get_user_manager
from app.auth.ratelimit import per_ip
from app.auth.schemas import UserCreate, UserRead
from app.errors import ErrorCode, responses

# Per library route name: the errors it answers besides 422, 403 `csrf_failed` and 429.
_ERRORS: dict[str, tuple[ErrorCode, ...]] = {
    "register:register": (ErrorCode.INVALID_PASSWORD, ErrorCode.USER_ALREADY_EXISTS),
    "reset:forgot_password": (),
    "reset:reset_password": (ErrorCode.INVALID_TOKEN, ErrorCode.INVALID_PASSWORD),
    "verify:request-token": (),
    "verify:verify": (ErrorCode.INVALID_TOKEN, ErrorCode.ALREADY_VERIFIED),
}

# The library's summaries read "Reset:Forgot Password"; these say what the route does.
_SUMMARIES: dict[str, str] = {
    "register:register": "Register a user (does not log in)",
    "reset:forgot_password": "Mail a password reset token (202 whether or not the email exists)",
    "reset:reset_password": "Set a new password with a reset token; ends every session of the user",
    "verify:request-token": "Mail an email verification token (202 whatever the email)",
    "verify:verify": "Verify an email address with its token",
}


def in_our_envelope(router: APIRouter) -> APIRouter:
    """A fastapi-users router documented as we answer: its errors in our envelope (mapped
    in app/errors.py) and readable summaries. The library declares its own `{"detail": ...}`
    400 bodies, and a route's own `responses` win over include_router's, so they are
    replaced. A route a later library version adds is a KeyError here, not an undocumented route."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            route.summary = _SUMMARIES[route.name]
            route.responses = responses(
                *_ERRORS[route.name],
                ErrorCode.VALIDATION_ERROR,
                ErrorCode.CSRF_FAILED,
                ErrorCode.RATE_LIMITED,
            )
    return router


router = APIRouter(prefix="/auth", tags=["auth"])
# Each route limited per client IP on its own count: register and the two that send
# mail, and reset and verify, whose input is guessable.
for library_router in (
    get_register_router(get_user_manager, UserRead, UserCreate),  # type: ignore[arg-type]
    get_reset_password_router(get_user_manager),
    get_verify_router(get_user_manager, UserRead),
):
    router.include_router(in_our_envelope(library_router), dependencies=[per_ip()])
