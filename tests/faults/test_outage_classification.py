"""Which exceptions answer 503 rather than 500: the cases the relay and a throwaway Redis cannot
produce, from a real PostgreSQL stop or restart (app/middleware.py `is_outage`)."""

import socket

import asyncpg.exceptions
import pytest
import redis.exceptions
import sqlalchemy.exc

from app.config import Settings
from app.outage import describe_outage, is_outage
from app.redis import create_client
from tests.fixtures.server import free_port


def as_sqlalchemy_raises(driver_error: BaseException) -> BaseException:
    """The chain SQLAlchemy's asyncpg dialect builds: DBAPIError <- its adapter error <- asyncpg's."""
    adapter_error = Exception(f"{type(driver_error)}: {driver_error}")
    adapter_error.__cause__ = driver_error
    wrapped = sqlalchemy.exc.DBAPIError("SELECT 1", None, adapter_error)  # type: ignore[arg-type]
    wrapped.__cause__ = adapter_error
    return wrapped


@pytest.mark.parametrize(
    "error",
    [
        # A restart: connecting while it starts up or shuts down (raised raw from connect) ...
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        # ... and the live connections it ends, or the server's own statement_timeout.
        as_sqlalchemy_raises(asyncpg.exceptions.AdminShutdownError("terminating connection")),
        as_sqlalchemy_raises(asyncpg.exceptions.CrashShutdownError("crash of another server process")),
        as_sqlalchemy_raises(asyncpg.exceptions.QueryCanceledError("canceling statement due to timeout")),
        as_sqlalchemy_raises(asyncpg.exceptions.TooManyConnectionsError("too many clients")),
        as_sqlalchemy_raises(asyncpg.exceptions.ConnectionFailureError("connection failure")),
        socket.gaierror(-2, "Name or service not known"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        sqlalchemy.exc.TimeoutError("QueuePool limit reached, connection timed out"),
        redis.exceptions.ConnectionError("Connection refused"),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
    ],
    ids=lambda error: (
        type(error).__name__ if not error.__cause__ else f"wrapped {type(error.__cause__.__cause__).__name__}"
    ),
)
def test_a_dependency_outage_is_503(error):
    assert is_outage(error)


@pytest.mark.parametrize(
    "error",
    [
        # Our bugs and the client's mistakes stay what they are: a 500 (or their own handler).
        ValueError("bad value"),
        as_sqlalchemy_raises(asyncpg.exceptions.UniqueViolationError("duplicate key")),
        as_sqlalchemy_raises(asyncpg.exceptions.UndefinedColumnError("column does not exist")),
        redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    ],
    ids=lambda error: (
        type(error).__name__ if not error.__cause__ else f"wrapped {type(error.__cause__.__cause__).__name__}"
    ),
)
def test_a_bug_is_not_an_outage(error):
    assert not is_outage(error)


async def test_the_outage_log_line_names_the_cause_and_never_the_address_credentials():
    """What the operator reads in `dependency unavailable: ...`: the real chain of a refused
    connection (nothing listens on the port), with the OS's reason, without the password
    that the configured URL carries."""
    url = f"redis://:hunter2-in-the-url@127.0.0.1:{free_port()}/0"
    client = create_client(Settings(_env_file=None, redis_url=url, secret_key="x" * 32))  # type: ignore[call-arg]
    try:
        with pytest.raises(redis.exceptions.ConnectionError) as raised:
            await client.ping()
    finally:
        await client.aclose()
    described = describe_outage(raised.value)
    assert is_outage(raised.value)
    assert described.startswith("redis.exceptions.ConnectionError <- ConnectionRefusedError [111] "), (
        described
    )
    assert "hunter2" not in described
