"""Logging and error reporting: JSON lines (console lines in development), Sentry when configured.

Every record gets the request id of the request it was logged in (API.md section 1:
"Logs carry the same id"), from the context variable RequestContextMiddleware sets.
Fields passed as `extra=` (event, outcome, actor, ip, route, status...) become keys.
"""

import json
import logging
import sys
import time
import traceback
from contextvars import ContextVar
from typing import Any

from app.config import Settings

HANDLER_NAME = "app.logs"

# Set by RequestContextMiddleware (app/middleware.py) for the length of each request.
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

# What a LogRecord carries by itself; everything else on it came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    # uvicorn passes its ANSI-coloured duplicate of the message as an extra.
    "color_message",
}

# CR and LF would let a logged value (a username, a path) start a line of its own that
# looks like a record (ASVS 16.4.1). Other control characters and the Unicode line
# breaks some viewers honour are escaped as well. JSON encoding escapes them already.
_ESCAPES = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F]} | {
    ord("\r"): "\\r",
    ord("\n"): "\\n",
    ord("\t"): "\\t",
    0x85: "\\x85",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


# default=str: an extra that JSON cannot encode is logged as its text, never dropped.
# One encoder for every line: json.dumps with an argument builds a new one each call.
_ENCODER = json.JSONEncoder(default=str)


def escape(text: str) -> str:
    return text.translate(_ESCAPES)


def _time(record: logging.LogRecord) -> str:
    # ISO 8601 in UTC with milliseconds; strftime costs a third of datetime's per line.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _request_id(record: logging.LogRecord) -> str | None:
    # An explicit extra wins (a record logged outside the request's context on its behalf).
    # get(None): None outside a request, rather than the variable's "-" placeholder.
    request_id = record.__dict__.get("request_id") or request_id_var.get(None)
    return None if request_id is None else str(request_id)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _RECORD_ATTRIBUTES and key != "request_id"
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, Z), level, logger, message, request_id, the extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id(record),
        }
        for key, value in _extras(record).items():
            payload.setdefault(key, value)  # an extra never overrides the fields above
        if record.exc_info and record.exc_info[0] is not None:
            payload["exc_type"] = record.exc_info[0].__name__
            payload["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        if record.stack_info:
            payload["stack"] = record.stack_info
        return _ENCODER.encode(payload)


class ConsoleFormatter(logging.Formatter):
    """`time level logger [request id] message key=value ...` for a developer's terminal."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            _time(record),
            f"{record.levelname:<7}",
            record.name,
            f"[{_request_id(record) or '-'}]",
            escape(record.getMessage()),
        ]
        parts += [
            f"{key}={_console_value(value)}" for key, value in _extras(record).items() if value is not None
        ]
        line = " ".join(parts)
        if record.exc_info and record.exc_info[0] is not None:
            # Indented, so that no line of a traceback (whose message may quote input)
            # can pass for a record, which always starts with the time.
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            line += "\n" + "\n".join(f"    {escape(row)}" for row in text.split("\n"))
        return line


def _console_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if not text or any(c in text for c in ' "='):
        return json.dumps(text)
    return escape(text)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time of each record (as logging's own
    last-resort handler does), so that a test runner swapping stderr never leaves it
    writing to a closed file."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(settings: Settings) -> None:
    """Idempotent: several apps in one process (tests) replace our handler, never add one,
    and handlers others attached to the root logger (pytest's, an operator's) stay."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(ConsoleFormatter() if settings.environment == "development" else JsonFormatter())
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())

    # uvicorn configures its loggers with handlers of its own before it imports the app:
    # send them through ours instead, at LOG_LEVEL.
    for name in ("uvicorn", "uvicorn.error"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.setLevel(logging.NOTSET)
        server_logger.propagate = True
    # Our access line (app.middleware) has the route template and the request id; uvicorn
    # skips its own when this logger has no handler anywhere up its chain.
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    # At INFO SQLAlchemy logs every statement with its parameters: password hashes,
    # emails. Only its warnings, whatever LOG_LEVEL says.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)


# ------------------------------------------------------------------ Sentry

# Parts of an event's request that carry credentials or personal data: cookies (the
# session), headers (Cookie, X-CSRF-Token), the body (passwords), the query string.
_DROPPED_REQUEST_KEYS = ("cookies", "headers", "data", "query_string", "env")


def scrub_event(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    request = event.get("request")
    if isinstance(request, dict):
        for key in _DROPPED_REQUEST_KEYS:
            request.pop(key, None)
    return event


def configure_sentry(settings: Settings) -> bool:
    """Initialises Sentry when SENTRY_DSN is set (and only then is sentry_sdk imported)."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.environment,
        send_default_pii=False,
        # Frames' locals would include request bodies (a LoginRequest with its password).
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrub_event,  # type: ignore[arg-type]
    )
    return True
