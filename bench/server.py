"""What a benchmark run owns, and gives back at the end, also on failure.

A PostgreSQL database of its own (dropped and created, migrated, dropped at the end), a
Redis key prefix of its own (`bench:<random>:`, DB 14 by default, deleted at the end),
one uvicorn process on a free port (stopped at the end), and the users it registers
through the API. The server helpers are the tests' own (tests/fixtures/server.py), so
that the benchmarks start the server the way the tests do."""

import asyncio
import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import asyncpg
import httpx
from redis import Redis

from app.config import Settings
from app.ops.bootstrap import migrate
from bench.common import API, CSRF_COOKIE, PASSWORD, ROOT, SESSION_COOKIE, BenchError, expect
from tests.fixtures.server import stop, wait_until_live

SECRET_KEY = "bench-secret-key-" + "x" * 40


async def _admin(postgres_url: str, statement: str) -> None:
    connection = await asyncpg.connect(f"{postgres_url}/postgres")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def scratch_database(postgres_url: str, name: str) -> Iterator[str]:
    """A PostgreSQL database of our own, created empty and dropped at the end."""
    asyncio.run(_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(_admin(postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        yield f"{postgres_url}/{name}"
    finally:
        asyncio.run(_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of our own; every key under it is deleted at the end (and only those)."""
    prefix = f"bench:{secrets.token_hex(4)}:"
    try:
        yield prefix
    finally:
        client = Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def server_env(database_url: str, redis_url: str, prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "SECRET_KEY": SECRET_KEY,
        "COOKIE_SECURE": "false",  # plain http: the cookies must not be Secure
        "LOG_LEVEL": "warning",
        "FIRST_SUPERUSER_EMAIL": "",
        "FIRST_SUPERUSER_PASSWORD": "",
        "SENTRY_DSN": "",
        # The login storm logs in far more often than a person would (and registers its users).
        "LOGIN_RATE_LIMIT": "1000000/minute",
        "REGISTER_RATE_LIMIT": "1000000/hour",
    }


@contextmanager
def owned_backends(postgres_url: str, database: str, redis_url: str) -> Iterator[dict[str, str]]:
    """The scratch database, migrated, and the Redis prefix; yields the environment a
    server process runs with on them (any number of processes may share it)."""
    with scratch_database(postgres_url, database) as database_url, redis_prefix(redis_url) as prefix:
        print(f"database {database}, Redis {redis_url} prefix {prefix}")
        migrate(Settings(_env_file=None, environment="test", database_url=database_url))  # type: ignore[call-arg]
        yield server_env(database_url, redis_url, prefix)


class ServerProcess(NamedTuple):
    base_url: str
    pid: int


@contextmanager
def server(
    env: dict[str, str], port: int, *, ws_deflate: bool = False, app: str = "app.main:app"
) -> Iterator[ServerProcess]:
    """One uvicorn process, with docker/entrypoint.sh's WebSocket setting unless told
    otherwise; yields its base URL and pid once it answers, stops it at the end."""
    uvicorn = ROOT / ".venv" / "bin" / "uvicorn"
    command = [str(uvicorn), app, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    command += ["--ws-per-message-deflate", "true" if ws_deflate else "false"]
    command += ["--ws-max-size", "65536", "--ws", "app.live.protocol:LiveWebSocketProtocol"]
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            try:
                wait_until_live(process, base_url, lambda: log.seek(0) or log.read())
            except AssertionError as exc:
                raise BenchError(str(exc)) from None
            print(f"server {base_url} up (uvicorn pid {process.pid})")
            yield ServerProcess(base_url, process.pid)
        finally:
            stop(process)


def login_session(base_url: str) -> str:
    """Register and log in a user through the API (with the CSRF dance); returns the session token."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        response = client.get(f"{API}/auth/csrf")
        expect(response, 200, "GET /auth/csrf")
        csrf = response.cookies.get(CSRF_COOKIE)
        if not csrf:
            raise BenchError(
                f"GET /auth/csrf set no {CSRF_COOKIE!r} cookie (is COOKIE_SECURE=false honoured?)"
            )
        # Explicit headers, not the client's jar: exactly what a browser would send.
        headers = {"X-CSRF-Token": csrf, "Cookie": f"{CSRF_COOKIE}={csrf}"}
        client.cookies.clear()

        username = f"bench{secrets.token_hex(4)}"
        account = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
        expect(client.post(f"{API}/auth/register", json=account, headers=headers), 201, "POST /auth/register")
        client.cookies.clear()

        credentials = {"username": username, "password": PASSWORD}
        response = client.post(f"{API}/auth/login", json=credentials, headers=headers)
        expect(response, 200, "POST /auth/login")
        token = response.cookies.get(SESSION_COOKIE)
        if not token:
            raise BenchError(f"POST /auth/login set no {SESSION_COOKIE!r} cookie")
        client.cookies.clear()

        me = client.get(f"{API}/users/me", headers={"Cookie": f"{SESSION_COOKIE}={token}"})
        expect(me, 200, "GET /users/me")
        if me.json().get("username") != username:
            raise BenchError(f"GET /users/me answered for someone else: {me.text}")
        return token


def register_users(base_url: str, count: int) -> list[str]:
    """Register `count` more users (the login storm's), with one CSRF dance; returns their usernames."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        response = client.get(f"{API}/auth/csrf")
        expect(response, 200, "GET /auth/csrf")
        csrf = response.cookies.get(CSRF_COOKIE) or ""
        headers = {"X-CSRF-Token": csrf, "Cookie": f"{CSRF_COOKIE}={csrf}"}
        client.cookies.clear()
        usernames = []
        for _ in range(count):
            username = f"storm{secrets.token_hex(4)}"
            account = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
            response = client.post(f"{API}/auth/register", json=account, headers=headers)
            expect(response, 201, "POST /auth/register")
            client.cookies.clear()
            usernames.append(username)
        return usernames
