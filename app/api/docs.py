"""/docs and /redoc that work without internet access (API.md section 8).

FastAPI's own pages load Swagger UI and ReDoc from a CDN: a blank page offline, or on a
network that blocks CDNs. fastapi-offline ships the same scripts and styles in its wheel
and serves them from the app, under `/docs/static` (which the Caddyfile keeps inside,
with the pages). The pages also get a Content-Security-Policy that lets the browser load
nothing from anywhere else: ReDoc's sidebar would fetch its vendor's logo from
cdn.redoc.ly, and a later upgrade that pointed an asset at a CDN again would show up as
a blank page in tests/openapi/test_docs_offline.py rather than as a request to the outside.
"""

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = f"{DOCS_URL}/static"
# Swagger UI and ReDoc start from an inline script and style themselves with inline
# styles; ReDoc's search runs in a worker built from a blob: URL.
POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    )
)
# Swagger UI sends the document's URL to validator.swagger.io for a badge unless it is on
# localhost: not on a company server's docs.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def create_fastapi(*, docs: bool, **kwargs: Any) -> FastAPI:
    """A FastAPI app; with `docs`, /openapi.json and the offline /docs and /redoc."""
    if not docs:
        return FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **kwargs)
    return FastAPIOffline(
        docs_url=DOCS_URL,
        redoc_url=REDOC_URL,
        static_url=ASSETS_URL,
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        **kwargs,
    )


class DocsPolicyMiddleware:
    """Adds POLICY to the responses of the docs pages (pure ASGI, like the others)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.pages = frozenset({DOCS_URL, REDOC_URL})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.pages:
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["Content-Security-Policy"] = POLICY
            await send(message)

        await self.app(scope, receive, send_with_policy)
