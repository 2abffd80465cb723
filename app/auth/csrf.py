"""Signed double-submit CSRF tokens bound to the session cookie, and the Origin check.

A token is itsdangerous-signed `{"n": nonce, "b": binding}`, where the binding is a
hash of the session cookie the browser held when the token was issued ("" before
login). A request passes when X-CSRF-Token equals the CSRF cookie, the signature
verifies, and the binding matches the session cookie it carries: a token issued
before login stops working at login, and one user's token is useless in another's
session (OWASP CSRF cheat sheet, "signed double-submit cookie").
"""

import hashlib
import hmac
import secrets
from collections.abc import Collection
from logging import WARNING
from typing import Annotated

from fastapi import Depends
from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from app.audit import audit
from app.auth.cookies import CookiePolicy
from app.cookie_header import cookies_of, script_bearer
from app.errors import ErrorCode, error_response
from app.state import Key, dependency

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "x-csrf-token"


class CsrfSigner:
    def __init__(self, secret_key: str, max_age: int) -> None:
        self.serializer = URLSafeTimedSerializer(secret_key, salt="csrf-token")
        self.max_age = max_age

    @staticmethod
    def binding(session_token: str | None) -> str:
        if not session_token:
            return ""
        return hashlib.sha256(b"csrf:" + session_token.encode("utf-8", "surrogateescape")).hexdigest()[:32]

    def issue(self, session_token: str | None) -> str:
        payload = {"n": secrets.token_urlsafe(16), "b": self.binding(session_token)}
        return str(self.serializer.dumps(payload))

    def valid(self, token: str, session_token: str | None, *, max_age: int | None = None) -> bool:
        try:
            payload = self.serializer.loads(token, max_age=max_age or self.max_age)
        except BadData:
            return False
        if not isinstance(payload, dict):
            return False
        return hmac.compare_digest(str(payload.get("b", "")), self.binding(session_token))

    def reusable(self, token: str | None, session_token: str | None) -> bool:
        """Valid for this session with at least half its life left: handed out again, so
        that one tab asking for a token does not invalidate the one another tab holds."""
        return bool(token) and self.valid(str(token), session_token, max_age=max(1, self.max_age // 2))


def own_origin(scope: Scope, headers: Headers) -> str:
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    return f"{scheme}://{headers.get('host', '')}".lower()


def foreign_origin(scope: Scope, headers: Headers, trusted: Collection[str]) -> bool:
    """The Origin rule, for unsafe requests and WebSocket handshakes alike: an Origin that
    is present must be the request's own or one of `trusted` (CORS_ORIGINS, lower case).
    No Origin at all is a non-browser client, which a cross-site attack cannot drive."""
    origin = headers.get("origin")
    if origin is None:
        return False
    origin = origin.lower().rstrip("/")
    return origin != own_origin(scope, headers) and origin not in trusted


class CsrfMiddleware:
    """Every POST, PUT, PATCH and DELETE under /api/ must pass both checks, login included."""

    def __init__(
        self, app: ASGIApp, *, signer: CsrfSigner, cookies: CookiePolicy, trusted_origins: list[str]
    ) -> None:
        self.app = app
        self.signer = signer
        self.cookies = cookies
        self.trusted_origins = frozenset(origin.lower() for origin in trusted_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in UNSAFE_METHODS
            or not scope["path"].startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        reason = self.rejection(scope, headers)
        if reason is None:
            await self.app(scope, receive, send)
            return
        # Logged like Django's django.security.csrf: a bypass attempt (ASVS 16.3.3).
        audit(
            HTTPConnection(scope), "csrf_rejected", "denied", level=WARNING, reason=reason, path=scope["path"]
        )
        await error_response(ErrorCode.CSRF_FAILED)(scope, receive, send)

    def rejection(self, scope: Scope, headers: Headers) -> str | None:
        if foreign_origin(scope, headers, self.trusted_origins):
            return "foreign origin"
        if script_bearer(scope, headers.get("authorization"), self.cookies.session):
            # A script's bearer request (API.md section 11): no cookie is ambient, and a
            # page on another site cannot add the header without a CORS preflight we
            # refuse. It is authenticated by its token, or not at all.
            return None
        sent = headers.get(CSRF_HEADER)
        if not sent:
            return "missing header"
        cookies = cookies_of(scope)
        # The same parse of the Cookie header that authentication reads (app/cookie_header.py).
        cookie = cookies.get(self.cookies.csrf)
        if not cookie:
            return "missing cookie"
        if not hmac.compare_digest(sent.encode(), cookie.encode()):
            return "header does not match cookie"
        if not self.signer.valid(cookie, cookies.get(self.cookies.session)):
            return "bad or foreign token"
        return None


CSRF: Key[CsrfSigner] = Key("csrf")
CsrfDep = Annotated[CsrfSigner, Depends(dependency(CSRF))]
