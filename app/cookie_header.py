"""The one parser of the Cookie header: every reader of a cookie (authentication, the
CSRF check, refresh, logout, the WebSocket) sees exactly the same pairs.

Two parsers that disagree are a vulnerability: with `x="a\\"` in the middle, the standard
library's SimpleCookie stopped at the bad pair while Starlette's parser read on, so the
CSRF check saw no session while authentication saw one (and both unquote in quadratic
time on Pythons before 3.11.10, CVE-2024-7592). This parser splits on ";" as browsers
do, never unquotes escapes, runs in linear time on any input, and says whether the
header was clean; RequestContextMiddleware refuses one that is not, before anything
reads it.

Clean means: each pair is `name=value` (a bare `value`, which browsers send for a cookie
without a name, is read as the name ""), the name holds no quote, backslash, space or
control character, and the value is either free of quotes and control characters or
one quoted run free of backslashes too (inside quotes a backslash is an escape to one
parser and a character to another: that ambiguity was the attack). Spaces, commas and
backslashes inside unquoted values, which RFC 6265 forbids but browsers store, are
accepted: other software on the same site may set them.
"""

import re
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r'[^\x00-\x20\x7f"\\;=]*')
_VALUE = re.compile(r'[^\x00-\x1f\x7f";]*|"[^\x00-\x1f\x7f"\\;]*"')


@dataclass(frozen=True, slots=True)
class Cookies:
    """Every value sent under each name, in order."""

    values: dict[str, list[str]]
    clean: bool

    def get(self, name: str) -> str | None:
        """The value, or None when absent or sent more than once (ambiguous: a cookie
        planted from a sibling subdomain next to ours)."""
        found = self.values.get(name)
        return found[0] if found is not None and len(found) == 1 else None

    def count(self, name: str) -> int:
        return len(self.values.get(name, ()))


EMPTY = Cookies({}, True)


def parse(header: str) -> Cookies:
    if not header:
        return EMPTY
    values: dict[str, list[str]] = {}
    clean = True
    for chunk in header.split(";"):
        chunk = chunk.strip(" \t")
        if not chunk:
            continue
        name, sep, value = chunk.partition("=")
        if not sep:
            name, value = "", chunk
        name, value = name.strip(" \t"), value.strip(" \t")
        if not (_NAME.fullmatch(name) and _VALUE.fullmatch(value)):
            clean = False
            continue
        if len(value) >= 2 and value[0] == '"':
            value = value[1:-1]
        values.setdefault(name, []).append(value)
    return Cookies(values, clean)


def header_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """Every Cookie header of a request as one: HTTP/2 may send one per cookie, and they
    are one list (RFC 9113 8.2.3)."""
    return "; ".join(value.decode("latin-1") for key, value in headers if key == b"cookie")


def cookies_of(scope: MutableMapping[str, Any]) -> Cookies:
    """The request's cookies, as RequestContextMiddleware parsed them (a scope it did not
    see, such as a test's, is parsed here)."""
    state = scope.setdefault("state", {})
    parsed: Cookies | None = state.get("cookies")
    if parsed is None:
        parsed = state["cookies"] = parse(header_of(scope.get("headers", ())))
    return parsed


def bearer_token(authorization: str) -> str | None:
    """The credentials of an `Authorization: Bearer <token>` header value, else None."""
    scheme, _, credentials = authorization.partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


def script_bearer(
    scope: MutableMapping[str, Any], authorization: str | None, session_cookie: str
) -> str | None:
    """The bearer token a request authenticates with: an `Authorization: Bearer` header on
    a request without a session cookie (one with it is authenticated by the cookie alone,
    and keeps its CSRF check: API.md section 11). Here because the CSRF check and
    authentication must answer this one question the same way."""
    if not authorization or session_cookie in cookies_of(scope).values:
        return None
    return bearer_token(authorization)
