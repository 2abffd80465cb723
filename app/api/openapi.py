"""The OpenAPI document (/openapi.json, /docs, /redoc): the whole truth for a generated client.

FastAPI derives paths, parameters and success bodies from the routes. It cannot see
what happens around them: the CSRF check and the session cookie are middleware and
plain dependencies (not `fastapi.security` classes), and some errors come from
outside a route's own code (the CSRF middleware, an unreachable PostgreSQL or Redis,
an unhandled exception, the validation handler). `install_openapi` adds those to the
generated document, once, by walking it:

- the security schemes: `csrfToken` (the `X-CSRF-Token` header) and `csrfCookie` (the
  cookie it must equal) on every POST, PUT, PATCH and DELETE, and `sessionCookie`
  where a route needs (or optionally reads) a session;
- the errors every operation can answer besides its own `responses=`, all in the
  envelope (`ErrorResponse`): FastAPI's `HTTPValidationError` and the library's
  `{"detail": ...}` bodies are never what we send (app/errors.py renders the envelope).

A route's own errors (404, 409, 400 ...) stay in its `responses=`: only it knows them.
"""

import re
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from app.auth.cookies import COOKIES
from app.auth.csrf import UNSAFE_METHODS
from app.auth.deps import (
    current_principal,
    current_superuser,
    current_user,
    fresh_principal,
    fresh_superuser,
    items_reader,
    items_writer,
    optional_user,
    profile_reader,
)
from app.auth.ratelimit import per_ip
from app.auth.tokens import PREFIX, Scope
from app.errors import MESSAGES, STATUS, ErrorCode, ErrorResponse
from app.state import state_of

CSRF_HEADER_NAME = "X-CSRF-Token"
ENVELOPE = "ErrorResponse"
ENVELOPE_REF = f"#/components/schemas/{ENVELOPE}"
_REF_PREFIX = "#/components/schemas/"

_REQUIRES_SESSION: frozenset[Callable[..., Any]] = frozenset(
    {current_principal, current_user, current_superuser, fresh_principal, fresh_superuser}
    | {profile_reader, items_writer}
)
_READS_SESSION: frozenset[Callable[..., Any]] = frozenset({optional_user, items_reader})
# The routes a personal access token reaches, and the scope each names (app/auth/deps.py).
_BEARER_SCOPES: dict[Callable[..., Any], Scope] = {
    profile_reader: Scope.PROFILE_READ,
    items_reader: Scope.ITEMS_READ,
    items_writer: Scope.ITEMS_WRITE,
}
# What a bearer header can get from any route that authenticates (API.md section 11):
# `invalid_token` is sent as 401 there (a mailed link's token is 400, its STATUS).
_BEARER_ERRORS = ((ErrorCode.INVALID_TOKEN, 401), (ErrorCode.INSUFFICIENT_SCOPE, 403))
_RATE_LIMITED: frozenset[Callable[..., Any]] = frozenset({per_ip().dependency})

# Routes that read the session cookie themselves rather than through a dependency.
# True: required (logout answers 401 without one); False: optional (the CSRF token is
# bound to the session cookie the caller holds, none before login).
_SESSION_BY_HAND: dict[tuple[str, str], bool] = {
    ("POST", "/api/v1/auth/logout"): True,
    ("GET", "/api/v1/auth/csrf"): False,
    # Sign-in with OpenID Connect: `link=true` needs a (fresh) session; a sign-in ends the
    # session the browser held.
    ("GET", "/api/v1/auth/oidc/{name}/authorize"): False,
    ("GET", "/api/v1/auth/oidc/{name}/callback"): False,
}
# The only routes that answer without PostgreSQL or Redis. Every other one fails closed
# with 503 when they are down, so a route added later is documented as able to, until
# it is listed here: documenting a status never sent misleads nobody, the reverse does.
_NO_BACKING_SERVICE: frozenset[tuple[str, str]] = frozenset(
    {("GET", "/healthz"), ("GET", "/api/v1/auth/csrf")}
)
# Statuses sent with a Retry-After header (app/errors.py `unavailable`, app/auth/ratelimit.py).
_RETRY_AFTER = {
    "429": "Seconds until the rate limit frees a request.",
    "503": "Seconds to wait before trying again.",
}
_CODE_IN_DESCRIPTION = re.compile(r"`([a-z_]+)`")
_KNOWN_CODES = {code.value: code for code in ErrorCode}


def install_openapi(app: FastAPI) -> None:
    """Replace `app.openapi` with FastAPI's document plus the above, built once and cached."""
    generate = app.openapi
    built: dict[str, Any] | None = None

    def openapi() -> dict[str, Any]:
        nonlocal built
        # FastAPI caches its document and rebuilds it only when routes were added; a
        # rebuilt one is a new dict, which is completed here once.
        document = generate()
        if document is not built:
            _complete(app, document)
            built = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _complete(app: FastAPI, document: dict[str, Any]) -> None:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name, schema in _envelope_schemas().items():
        schemas.setdefault(name, schema)
    cookies = state_of(app)[COOKIES]
    components.setdefault("securitySchemes", {}).update(
        {
            "csrfToken": {
                "type": "apiKey",
                "in": "header",
                "name": CSRF_HEADER_NAME,
                "description": (
                    "Required on every POST, PUT, PATCH and DELETE. `GET /api/v1/auth/csrf` returns "
                    "it and sets its cookie; login and refresh return a new one (a token is bound to "
                    "the session it was issued with). In /docs: call `GET /api/v1/auth/csrf`, paste "
                    "`csrf_token` here, log in, then paste the `csrf_token` login returned."
                ),
            },
            "csrfCookie": {
                "type": "apiKey",
                "in": "cookie",
                "name": cookies.csrf,
                "description": (
                    "The CSRF cookie, equal to the `X-CSRF-Token` header (signed double submit). "
                    "Set by `GET /api/v1/auth/csrf`, login and refresh; a browser sends it by itself."
                ),
            },
            "sessionCookie": {
                "type": "apiKey",
                "in": "cookie",
                "name": cookies.session,
                "description": (
                    "The opaque session token, set by `POST /api/v1/auth/login` (HttpOnly: a browser "
                    "sends it by itself, JavaScript cannot read it)."
                ),
            },
            "bearerToken": {
                "type": "http",
                "scheme": "bearer",
                "description": (
                    f"A personal access token (`{PREFIX}...`, `POST /api/v1/users/me/tokens`), for "
                    "scripts: no cookie and no CSRF token with it. It reaches only the operations "
                    "that list its scope here; any other answers 403 `insufficient_scope`. A "
                    "request with a session cookie is authenticated by the cookie alone."
                ),
            },
        }
    )
    routes = dict(_routes(app))
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            key = (method.upper(), path)
            _secure(operation, key, routes.get(key, frozenset()))
            _document_errors(operation, key, routes.get(key, frozenset()))
    _drop_unreferenced_schemas(document)


def _envelope_schemas() -> dict[str, Any]:
    schema = ErrorResponse.model_json_schema(ref_template=_REF_PREFIX + "{model}")
    definitions: dict[str, Any] = schema.pop("$defs", {})
    return {ENVELOPE: schema, **definitions}


def _routes(app: FastAPI) -> Iterator[tuple[tuple[str, str], frozenset[Callable[..., Any]]]]:
    """(METHOD, path template) -> every dependency the route runs, inclusions' included."""
    for context in iter_route_contexts(app.routes):
        dependant = getattr(context, "dependant", None)
        if dependant is None or not context.path_format:
            continue
        calls = frozenset(_calls(dependant))
        for method in context.methods or ():
            yield (method, context.path_format), calls


def _calls(dependant: Any) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _session(key: tuple[str, str], calls: frozenset[Callable[..., Any]]) -> bool | None:
    """True: the route needs a session; False: it reads one if sent; None: it ignores it."""
    if calls & _REQUIRES_SESSION:
        return True
    if calls & _READS_SESSION:
        return False
    return _SESSION_BY_HAND.get(key)


def _secure(operation: dict[str, Any], key: tuple[str, str], calls: frozenset[Callable[..., Any]]) -> None:
    base: dict[str, list[str]] = {}
    if key[0] in UNSAFE_METHODS:
        base = {"csrfToken": [], "csrfCookie": []}
    session = _session(key, calls)
    if base and session is None:
        # The CSRF check reads the session cookie of every unsafe request (the token is
        # bound to it): a caller holding a session must send it, or its token fails.
        session = False
    if session is True:
        requirements = [{**base, "sessionCookie": []}]
    elif session is False:
        # OpenAPI's way of saying "optional": either requirement object will do. The one
        # with the session first: a client holding one sends it (schemathesis, for one,
        # applies the first requirement it has credentials for).
        requirements = [{**base, "sessionCookie": []}, base]
    elif base:
        requirements = [base]
    else:
        return
    scopes = sorted({_BEARER_SCOPES[call] for call in calls if call in _BEARER_SCOPES})
    if scopes:  # last: a client holding a session sends it (see above)
        requirements.append({"bearerToken": [scope.value for scope in scopes]})
    operation["security"] = requirements


def _common_errors(
    operation: dict[str, Any], key: tuple[str, str], calls: frozenset[Callable[..., Any]]
) -> list[tuple[ErrorCode, int]]:
    """The errors this operation can answer from outside its own code, with their status."""
    codes = [(code, STATUS[code]) for code in _outside_errors(operation, key, calls)]
    if calls & (_REQUIRES_SESSION | _READS_SESSION):
        codes += _BEARER_ERRORS
    return codes


def _outside_errors(
    operation: dict[str, Any], key: tuple[str, str], calls: frozenset[Callable[..., Any]]
) -> list[ErrorCode]:
    method, path = key
    codes = [ErrorCode.INTERNAL_ERROR]  # an unhandled exception, anywhere
    # app/middleware.py refuses any request whose headers are too large or whose Cookie
    # header does not parse cleanly, before routing.
    codes += [ErrorCode.REQUEST_HEADERS_TOO_LARGE, ErrorCode.BAD_REQUEST]
    if key not in _NO_BACKING_SERVICE:
        codes.append(ErrorCode.SERVICE_UNAVAILABLE)
    if operation.get("parameters") or operation.get("requestBody"):
        codes.append(ErrorCode.VALIDATION_ERROR)
    if method in UNSAFE_METHODS and path.startswith("/api/"):  # app/auth/csrf.py's scope
        codes.append(ErrorCode.CSRF_FAILED)
    if _session(key, calls) is True:
        codes.append(ErrorCode.NOT_AUTHENTICATED)
    if calls & _RATE_LIMITED:
        codes.append(ErrorCode.RATE_LIMITED)
    return codes


def _document_errors(
    operation: dict[str, Any], key: tuple[str, str], calls: frozenset[Callable[..., Any]]
) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    codes: dict[str, list[ErrorCode]] = {}
    for status, response in responses.items():
        if not status.startswith(("2", "3")):
            described = _CODE_IN_DESCRIPTION.findall(response.get("description", ""))
            codes[status] = [_KNOWN_CODES[code] for code in described if code in _KNOWN_CODES]
    for code, code_status in _common_errors(operation, key, calls):
        listed = codes.setdefault(str(code_status), [])
        if code not in listed:
            listed.append(code)
    for status, listed in codes.items():
        response = responses.setdefault(status, {})
        if listed:
            response["description"] = "\n".join(f"- `{code.value}`: {MESSAGES[code]}" for code in listed)
        else:
            response.setdefault("description", "Error")
        # Whatever the route (or a library) declared, the envelope is what is sent.
        response["content"] = {"application/json": {"schema": {"$ref": ENVELOPE_REF}}}
        if status in _RETRY_AFTER:
            response["headers"] = {
                "Retry-After": {"description": _RETRY_AFTER[status], "schema": {"type": "integer"}}
            }
    # Ordered by status, as a reader scans them.
    operation["responses"] = dict(sorted(responses.items()))


def _drop_unreferenced_schemas(document: dict[str, Any]) -> None:
    """Remove the component schemas nothing points at any more (`HTTPValidationError`,
    `ValidationError`, fastapi-users' `ErrorModel`): they describe bodies never sent."""
    schemas: dict[str, Any] = document["components"]["schemas"]
    outside = {key: value for key, value in document.items() if key != "components"}
    outside["components"] = {k: v for k, v in document["components"].items() if k != "schemas"}
    pending = list(_refs(outside))
    kept: set[str] = set()
    while pending:
        name = pending.pop()
        if name in kept or name not in schemas:
            continue
        kept.add(name)
        pending.extend(_refs(schemas[name]))
    for name in list(schemas):
        if name not in kept:
            del schemas[name]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            yield ref.removeprefix(_REF_PREFIX)
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)
