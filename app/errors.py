"""The contract's error envelope (API.md section 1) and every handler that renders it."""

import logging
from collections.abc import Mapping
from enum import Enum, StrEnum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


class ErrorCode(StrEnum):
    VALIDATION_ERROR = "validation_error"
    INVALID_PASSWORD = "invalid_password"
    INVALID_CURRENT_PASSWORD = "invalid_current_password"
    NOT_AUTHENTICATED = "not_authenticated"
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_REFRESH_TOKEN = "invalid_refresh_token"
    FORBIDDEN = "forbidden"
    USER_INACTIVE = "user_inactive"
    CSRF_FAILED = "csrf_failed"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    USER_ALREADY_EXISTS = "user_already_exists"
    LAST_SUPERUSER = "last_superuser"
    INVALID_TOKEN = "invalid_token"
    INVALID_PASSKEY = "invalid_passkey"
    SECOND_FACTOR_REQUIRED = "second_factor_required"
    INVALID_MFA_CODE = "invalid_mfa_code"
    MFA_CHALLENGE_EXPIRED = "mfa_challenge_expired"
    REAUTHENTICATION_REQUIRED = "reauthentication_required"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    MFA_ENROLLMENT_REQUIRED = "mfa_enrollment_required"
    CONFLICT = "conflict"
    ALREADY_VERIFIED = "already_verified"
    RATE_LIMITED = "rate_limited"
    BAD_REQUEST = "bad_request"
    REQUEST_HEADERS_TOO_LARGE = "request_headers_too_large"
    INTERNAL_ERROR = "internal_error"
    SERVICE_UNAVAILABLE = "service_unavailable"


STATUS: dict[ErrorCode, int] = {
    ErrorCode.VALIDATION_ERROR: 422,
    ErrorCode.INVALID_PASSWORD: 400,
    ErrorCode.INVALID_CURRENT_PASSWORD: 400,
    ErrorCode.NOT_AUTHENTICATED: 401,
    ErrorCode.INVALID_CREDENTIALS: 401,
    ErrorCode.INVALID_REFRESH_TOKEN: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.USER_INACTIVE: 403,
    ErrorCode.CSRF_FAILED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.USER_ALREADY_EXISTS: 409,
    ErrorCode.LAST_SUPERUSER: 409,
    ErrorCode.INVALID_TOKEN: 400,
    ErrorCode.INVALID_PASSKEY: 400,
    ErrorCode.SECOND_FACTOR_REQUIRED: 400,
    ErrorCode.INVALID_MFA_CODE: 401,
    ErrorCode.MFA_CHALLENGE_EXPIRED: 401,
    ErrorCode.REAUTHENTICATION_REQUIRED: 403,
    ErrorCode.INSUFFICIENT_SCOPE: 403,
    ErrorCode.MFA_ENROLLMENT_REQUIRED: 403,
    ErrorCode.CONFLICT: 409,
    ErrorCode.ALREADY_VERIFIED: 400,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.REQUEST_HEADERS_TOO_LARGE: 431,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
}

MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.VALIDATION_ERROR: "The request is not valid.",
    ErrorCode.INVALID_PASSWORD: "The password does not meet the password policy.",
    ErrorCode.INVALID_CURRENT_PASSWORD: "The current password is missing or wrong.",
    ErrorCode.NOT_AUTHENTICATED: "Authentication required.",
    ErrorCode.INVALID_CREDENTIALS: "Username or password is incorrect.",
    ErrorCode.INVALID_REFRESH_TOKEN: "The refresh token is missing, expired or revoked.",
    ErrorCode.FORBIDDEN: "You are not allowed to do this.",
    ErrorCode.USER_INACTIVE: "This account is deactivated.",
    ErrorCode.CSRF_FAILED: "CSRF check failed.",
    ErrorCode.NOT_FOUND: "Not found.",
    ErrorCode.METHOD_NOT_ALLOWED: "Method not allowed.",
    ErrorCode.USER_ALREADY_EXISTS: "A user with this email or username already exists.",
    ErrorCode.LAST_SUPERUSER: "The last active superuser cannot lose that role.",
    ErrorCode.INVALID_TOKEN: "The token is invalid or expired.",
    ErrorCode.INVALID_PASSKEY: "The passkey response could not be verified.",
    ErrorCode.SECOND_FACTOR_REQUIRED: "This account has a second factor: re-authenticate with it.",
    ErrorCode.INVALID_MFA_CODE: "The code is wrong, already used or expired.",
    ErrorCode.MFA_CHALLENGE_EXPIRED: "No second step is pending, or it expired: log in again.",
    ErrorCode.REAUTHENTICATION_REQUIRED: "Confirm it is you: re-authenticate to do this.",
    ErrorCode.INSUFFICIENT_SCOPE: "This token's scopes do not allow this request.",
    ErrorCode.MFA_ENROLLMENT_REQUIRED: "Admin routes need a second factor: enrol one first.",
    ErrorCode.CONFLICT: "The request conflicts with the current state.",
    ErrorCode.ALREADY_VERIFIED: "This email address is already verified.",
    ErrorCode.RATE_LIMITED: "Too many requests.",
    ErrorCode.BAD_REQUEST: "Bad request.",
    ErrorCode.REQUEST_HEADERS_TOO_LARGE: "The request's headers are too large.",
    ErrorCode.INTERNAL_ERROR: "Internal server error.",
    ErrorCode.SERVICE_UNAVAILABLE: "A backing service is unavailable; try again shortly.",
}


class AppError(Exception):
    """An error the contract names; rendered as the envelope by one handler."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(code.value)
        self.code = code
        # `status`: the one code the contract sends with two statuses, `invalid_token`
        # (400 for a mailed link's token, 401 for a bearer token).
        self.status_code = status or STATUS[code]
        self.message = message or MESSAGES[code]
        self.details = details
        self.headers = headers


def invalid_query(name: str, msg: str) -> AppError:
    """422 `validation_error` for a query parameter our code checks (its value is not
    echoed), in the shape of FastAPI's own: one `{loc, msg, type}`."""
    return AppError(
        ErrorCode.VALIDATION_ERROR, details=[{"loc": ["query", name], "msg": msg, "type": "value_error"}]
    )


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The envelope of every non-2xx response."""

    error: ErrorBody


def error_response(
    code: ErrorCode,
    message: str | None = None,
    *,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
    status_code: int | None = None,
) -> JSONResponse:
    body = {"error": {"code": code.value, "message": message or MESSAGES[code], "details": details}}
    return JSONResponse(body, status_code=status_code or STATUS[code], headers=headers)


def unavailable(failed: Any = None) -> JSONResponse:
    return error_response(
        ErrorCode.SERVICE_UNAVAILABLE,
        details=failed,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def responses(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the OpenAPI then documents its errors truthfully."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry = out.setdefault(STATUS[code], {"model": ErrorResponse, "description": ""})
        entry["description"] = ", ".join(filter(None, [entry["description"], f"`{code.value}`"]))
    return out


# fastapi-users raises HTTPException(detail=<its ErrorCode>) from its routers; these
# are the contract's names and statuses for them.
_LIBRARY_CODES: dict[str, ErrorCode] = {
    "REGISTER_USER_ALREADY_EXISTS": ErrorCode.USER_ALREADY_EXISTS,
    "UPDATE_USER_EMAIL_ALREADY_EXISTS": ErrorCode.USER_ALREADY_EXISTS,
    "REGISTER_INVALID_PASSWORD": ErrorCode.INVALID_PASSWORD,
    "UPDATE_USER_INVALID_PASSWORD": ErrorCode.INVALID_PASSWORD,
    "RESET_PASSWORD_INVALID_PASSWORD": ErrorCode.INVALID_PASSWORD,
    "LOGIN_BAD_CREDENTIALS": ErrorCode.INVALID_CREDENTIALS,
    # One code for a garbage, expired, used or foreign token: which it was is not the caller's business.
    "RESET_PASSWORD_BAD_TOKEN": ErrorCode.INVALID_TOKEN,
    "VERIFY_USER_BAD_TOKEN": ErrorCode.INVALID_TOKEN,
    "VERIFY_USER_ALREADY_VERIFIED": ErrorCode.ALREADY_VERIFIED,
}
_STATUS_CODES: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.NOT_AUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    422: ErrorCode.VALIDATION_ERROR,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}


def _from_http_exception(exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail
    reason = None
    if isinstance(detail, dict):
        reason = detail.get("reason")
        detail = detail.get("code")
    if isinstance(detail, Enum):  # fastapi-users' ErrorCode is a (str, Enum)
        detail = detail.value
    code = _LIBRARY_CODES.get(str(detail)) if detail is not None else None
    if code is not None:
        return error_response(code, reason, headers=exc.headers)
    fallback = _STATUS_CODES.get(exc.status_code)
    if fallback is None:
        fallback = ErrorCode.INTERNAL_ERROR if exc.status_code >= 500 else ErrorCode.BAD_REQUEST
    # Library codes we do not map stay visible in snake case.
    if isinstance(detail, str) and detail.isupper():
        return error_response(fallback, detail.lower(), headers=exc.headers, status_code=exc.status_code)
    return error_response(fallback, headers=exc.headers, status_code=exc.status_code)


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(
        exc.code, exc.message, details=exc.details, headers=exc.headers, status_code=exc.status_code
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _from_http_exception(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only where, what and why: pydantic's `input` and `ctx` can carry the submitted
    # value, and for a missing field the whole body, password included (pydantic #9139).
    details = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    return error_response(ErrorCode.VALIDATION_ERROR, details=details)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
