"""Pure ASGI middleware (it sees WebSocket scopes too, which BaseHTTPMiddleware does not)."""

import logging
import os
import re
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.cookie_header import EMPTY, Cookies, header_of, parse
from app.errors import ErrorCode, error_response, unavailable
from app.logs import request_id_var
from app.metrics import Metrics, RouteTemplates
from app.outage import describe_outage, is_outage

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("app.access")

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Refused before anything parses them (README "Security"): no header of ours comes near,
# a browser's Cookie header for this site stays far below, and parsing a 48 KB Cookie
# was what froze a worker (CVE-2024-7592). The Caddyfile caps what reaches us above these.
MAX_HEADER_BYTES = 8192
MAX_HEADERS_BYTES = 16384


class RequestContextMiddleware:
    """Request id, baseline headers, the last-resort error envelope, the access log line
    and the request metrics.

    Sits inside Starlette's ServerErrorMiddleware, so an unhandled exception is
    rendered here, with the request id and the headers every response must carry,
    and its 500 is what the access line and the metrics record.
    """

    def __init__(
        self, app: ASGIApp, *, credential_cookies: tuple[str, ...], metrics: Metrics | None = None
    ) -> None:
        self.app = app
        self.credential_cookies = credential_cookies
        self.metrics = metrics
        self.routes = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming, refusal = _read_headers(scope)
        request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else _new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        cookies: Cookies | None = None  # unread when the headers are refused already
        if refusal is None:
            cookies, refusal = _read_cookies(scope)
            state["cookies"] = cookies
        reset = request_id_var.set(request_id)
        try:
            if scope["type"] == "websocket":
                if refusal is not None:
                    await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
                    return
                await self.app(scope, receive, send)
                return
            # A refused request may carry credentials in what was not read (too large) or
            # not understood (unclean): its answer is never stored either (API.md section 2).
            carries_credentials = refusal is not None or (
                cookies is not None and any(cookies.count(n) for n in self.credential_cookies)
            )
            started = False
            status = 500  # what a response that never started counts as
            began = time.perf_counter()

            async def send_with_headers(message: Message) -> None:
                nonlocal started, status
                if message["type"] == "http.response.start":
                    started = True
                    status = message["status"]
                    out = MutableHeaders(scope=message)
                    out["X-Request-ID"] = request_id
                    out["X-Content-Type-Options"] = "nosniff"
                    if carries_credentials or "set-cookie" in out:
                        out["Cache-Control"] = "no-store"
                await send(message)

            try:
                if refusal is not None:
                    await _refused(refusal)(scope, receive, send_with_headers)
                    return
                await self.app(scope, receive, send_with_headers)
            except Exception as exc:
                if started:
                    raise
                if is_outage(exc):
                    logger.warning("dependency unavailable: %s", describe_outage(exc))
                    response = unavailable()
                else:
                    logger.exception("unhandled error")
                    response = error_response(ErrorCode.INTERNAL_ERROR, details={"request_id": request_id})
                await response(scope, receive, send_with_headers)
            finally:
                self.finished(scope, status, time.perf_counter() - began)
        finally:
            request_id_var.reset(reset)

    def finished(self, scope: Scope, status: int, seconds: float) -> None:
        """One access line and one timing per request: the route template, never the raw
        path or its query string (ids, tokens), nor any header or cookie."""
        route = self.routes.template(scope)
        if self.metrics is not None:
            self.metrics.observe_request(scope["method"], route, status, seconds)
        if access_logger.isEnabledFor(logging.INFO):
            client = scope.get("client")
            access_logger.info(
                "%s %s %s",
                scope["method"],
                route,
                status,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "ip": client[0] if client else None,
                },
            )


def _new_request_id() -> str:
    """128 random bits in hex, as uuid4().hex was, without building a UUID object per request."""
    return os.urandom(16).hex()


def _read_headers(scope: Scope) -> tuple[str, ErrorCode | None]:
    """The request id header, and whether the headers are too large to read."""
    incoming, total, refusal = "", 0, None
    for key, value in scope["headers"]:
        size = len(key) + len(value)
        total += size
        if size > MAX_HEADER_BYTES:
            refusal = ErrorCode.REQUEST_HEADERS_TOO_LARGE
        elif key == b"x-request-id":
            incoming = value.decode("latin-1")
    if total > MAX_HEADERS_BYTES:
        refusal = ErrorCode.REQUEST_HEADERS_TOO_LARGE
    return incoming, refusal


def _read_cookies(scope: Scope) -> tuple[Cookies, ErrorCode | None]:
    """The one parse of the request's cookies (app/cookie_header.py), and whether they are
    refused: too large in all, or not clean."""
    header = header_of(scope["headers"])
    if len(header) > MAX_HEADER_BYTES:  # several Cookie headers, each under the cap
        return EMPTY, ErrorCode.REQUEST_HEADERS_TOO_LARGE
    cookies = parse(header)
    return cookies, None if cookies.clean else ErrorCode.BAD_REQUEST


def _refused(code: ErrorCode) -> ASGIApp:
    message = {
        ErrorCode.REQUEST_HEADERS_TOO_LARGE: f"Request headers over {MAX_HEADER_BYTES} bytes each or {MAX_HEADERS_BYTES} in all are refused.",
        ErrorCode.BAD_REQUEST: "The Cookie header could not be parsed.",
    }[code]
    # Sent with Connection: close: nothing else on this connection is worth reading.
    return error_response(code, message, headers={"Connection": "close"})
