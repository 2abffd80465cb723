"""Pure ASGI middleware (it sees WebSocket scopes too, which BaseHTTPMiddleware does not)."""

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ErrorCode, error_response, unavailable
from app.logs import request_id_var
from app.metrics import Metrics, RouteTemplates
from app.outage import is_outage

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("app.access")

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


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
        self.credential_markers = tuple(f"{name}=" for name in credential_cookies)
        self.metrics = metrics
        self.routes = RouteTemplates()

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
