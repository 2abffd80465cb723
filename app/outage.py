"""Which exceptions mean that PostgreSQL or Redis is down, refusing or hanging.

Such a failure answers 503 `service_unavailable` (API.md section 1), never 500 and never
"logged out": the request context middleware renders it, and code that must answer
something else (the WebSocket handshake, the readiness check) asks `is_outage` too.
"""

import socket

import asyncpg.exceptions
import redis.exceptions
import sqlalchemy.exc

OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    ConnectionError,
    TimeoutError,
    # The database host name does not resolve: a stopped container's name, a DNS outage.
    # asyncpg raises it raw from connect (a plain OSError, not a ConnectionError).
    socket.gaierror,
    # PostgreSQL's own refusals, which SQLAlchemy's asyncpg dialect wraps in a plain
    # DBAPIError (or, from connect, not at all): class 57, statement_timeout (a lock wait
    # or an overloaded server), shutting down, "the database system is starting up"
    # while it restarts; class 53, too many connections, out of memory or disk; class 08.
    # Found by tests/faults: a statement_timeout answered 500.
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.PostgresConnectionError,
)
_MAX_CAUSES = 5


def is_outage(exc: BaseException) -> bool:
    # Down the `raise ... from` chain: SQLAlchemy wraps the driver's exception two levels
    # deep (DBAPIError <- the dialect's adapter error <- asyncpg's own).
    cause: BaseException | None = exc
    for _ in range(_MAX_CAUSES):
        if cause is None:
            return False
        if isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, OUTAGE_ERRORS):
            return True
        cause = cause.__cause__
    return False


def describe_error(exc: BaseException) -> str:
    """One exception by type, with the OS's errno and reason where there is one; never its
    message, which can carry a statement or an address's credentials."""
    kind = type(exc)
    # redis.exceptions.TimeoutError or the builtin one: which client gave up says which dependency.
    part = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    if isinstance(exc, OSError) and exc.errno is not None:
        part += f" [{exc.errno}] {exc.strerror}"
    return part


def describe_outage(exc: BaseException) -> str:
    """The exception chain, each by `describe_error`, e.g. `redis.exceptions.ConnectionError
    <- ConnectionRefusedError [111] Connect call failed`: which dependency failed and how,
    for the operator."""
    parts = []
    cause: BaseException | None = exc
    for _ in range(_MAX_CAUSES):
        if cause is None:
            break
        parts.append(describe_error(cause))
        # redis-py raises its ConnectionError from the socket error as __context__.
        cause = cause.__cause__ or cause.__context__
    return " <- ".join(parts)
