"""Pure ASGI middleware (it sees WebSocket scopes too, which BaseHTTPMiddleware does not)."""

import logging
import re
import uuid
from contextvars import ContextVar

import redis.exceptions
import sqlalchemy.exc
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ErrorCode, error_response, unavailable

logger = logging.getLogger(__name__)

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# Exceptions that mean PostgreSQL or Redis is down, refusing or hanging: the
# request fails closed with 503, never 500 and never as "logged out".
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    ConnectionError,
    TimeoutError,
)


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OUTAGE_ERRORS) or isinstance(exc.__cause__, OUTAGE_ERRORS)


class RequestContextMiddleware:
    """Request id, baseline headers, and the last-resort error envelope.

    Sits inside Starlette's ServerErrorMiddleware, so an unhandled exception is
    rendered here, with the request id and the headers every response must carry.
    """

    def __init__(self, app: ASGIApp, *, credential_cookies: tuple[str, ...]) -> None:
        self.app = app
        self.credential_markers = tuple(f"{name}=" for name in credential_cookies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        reset = request_id_var.set(request_id)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
                return
            cookie_header = headers.get("cookie", "")
            carries_credentials = any(marker in cookie_header for marker in self.credential_markers)
            started = False

            async def send_with_headers(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                    out = MutableHeaders(scope=message)
                    out["X-Request-ID"] = request_id
                    out["X-Content-Type-Options"] = "nosniff"
                    if carries_credentials or "set-cookie" in out:
                        out["Cache-Control"] = "no-store"
                await send(message)

            try:
                await self.app(scope, receive, send_with_headers)
            except Exception as exc:
                if started:
                    raise
                if is_outage(exc):
                    logger.warning("dependency unavailable: %s", type(exc).__name__)
                    response = unavailable()
                else:
                    logger.exception("unhandled error")
                    response = error_response(ErrorCode.INTERNAL_ERROR, details={"request_id": request_id})
                await response(scope, receive, send_with_headers)
        finally:
            request_id_var.reset(reset)
