"""Password reset and email verification (API.md section 3): fastapi-users' routers.

The library's errors become our envelope in app/errors.py; the mails and the
revocation of sessions after a reset are UserManager hooks (app/auth/manager.py).
"""

from fastapi import APIRouter
from fastapi_users.router import get_reset_password_router, get_verify_router

from app.auth.backend import get_user_manager
from app.auth.library import in_our_envelope
from app.auth.ratelimit import per_ip
from app.errors import ErrorCode
from app.users.schemas import UserRead

# Per library route name: the errors it answers besides 422 and 403 `csrf_failed`.
_ERRORS: dict[str, tuple[ErrorCode, ...]] = {
    "reset:forgot_password": (),
    "reset:reset_password": (ErrorCode.INVALID_TOKEN, ErrorCode.INVALID_PASSWORD),
    "verify:request-token": (),
    "verify:verify": (ErrorCode.INVALID_TOKEN, ErrorCode.ALREADY_VERIFIED),
}

# The library's summaries read "Reset:Forgot Password"; these say what the route does.
_SUMMARIES: dict[str, str] = {
    "reset:forgot_password": "Mail a password reset token (202 whether or not the email exists)",
    "reset:reset_password": "Set a new password with a reset token; ends every session of the user",
    "verify:request-token": "Mail an email verification token (202 whatever the email)",
    "verify:verify": "Verify an email address with its token",
}


recovery_router = APIRouter(prefix="/auth", tags=["auth"])
# Each route limited per client IP on its own count (forgot-password and
# request-verify-token send mail; reset and verify take guessable input).
recovery_router.include_router(
    in_our_envelope(get_reset_password_router(get_user_manager), _ERRORS, _SUMMARIES), dependencies=[per_ip()]
)
recovery_router.include_router(
    in_our_envelope(get_verify_router(get_user_manager, UserRead), _ERRORS, _SUMMARIES),
    dependencies=[per_ip()],
)
