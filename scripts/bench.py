"""Benchmark: GET /api/v1/users/me with a session cookie against GET /healthz.

What it measures: requests per second and p50/p99 latency of both routes, served
by ONE uvicorn process and loaded by wrk from a second process, and the ratio
users/me rps / healthz rps.

Why: /healthz is the floor of what a request costs in this stack (uvicorn, the
middleware, routing, JSON). /users/me adds what every authenticated request pays:
reading the session cookie, one Redis round trip for the session and the user
snapshot, and the response model. The target is that an authenticated request runs
at no less than half the rate of /healthz (ratio >= 0.5); below that, the session
hot path costs more than the whole rest of the stack and is worth profiling.

What it touches: a PostgreSQL database of its own (dropped and created, dropped at
the end), a Redis key prefix of its own (`bench:<random>:` on DB 14, deleted at the
end), one server process on a free port (stopped at the end, also on failure).
It installs nothing: it needs `wrk` (Debian: `apt-get install wrk`).

    .venv/bin/python scripts/bench.py [--duration 10] [--connections 32] [--threads 1]
"""

import argparse
import asyncio
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import asyncpg
import httpx
from redis import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.bootstrap import migrate  # noqa: E402
from app.config import Settings  # noqa: E402

TARGET_RATIO = 0.5
API = "/api/v1"
SESSION_COOKIE = "session"  # the names with COOKIE_SECURE=false (API.md section 2)
CSRF_COOKIE = "csrftoken"
SECRET_KEY = "bench-secret-key-" + "x" * 40
PASSWORD = "Bench-password-that-is-long-enough-1"
WARMUP_SECONDS = 2
STARTUP_TIMEOUT_SECONDS = 30.0


class BenchError(Exception):
    """Something went wrong before a number could be trusted: printed, exit 1."""


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: str | None


# ---------------------------------------------------------------- wrk output


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise BenchError(f"cannot read wrk duration {text!r}")
    return float(match[1]) * _UNITS_MS[match[2]]


def parse_wrk(output: str) -> WrkResult:
    """Requests/sec, the 50% and 99% lines of --latency, and the error counters."""

    def find(pattern: str) -> str | None:
        match = re.search(pattern, output, re.MULTILINE)
        return match[1] if match else None

    rps, p50, p99 = find(r"^Requests/sec:\s+([\d.]+)"), find(r"^\s+50%\s+(\S+)"), find(r"^\s+99%\s+(\S+)")
    requests = find(r"^\s+(\d+) requests in")
    if rps is None or p50 is None or p99 is None or requests is None:
        raise BenchError(f"unexpected wrk output (was --latency given?):\n{output}")
    return WrkResult(
        rps=float(rps),
        p50_ms=_duration_ms(p50),
        p99_ms=_duration_ms(p99),
        requests=int(requests),
        non_2xx=int(find(r"Non-2xx or 3xx responses:\s+(\d+)") or 0),
        socket_errors=find(r"Socket errors:\s+(.+)$"),
    )


def run_wrk(url: str, *, duration: int, connections: int, threads: int, cookie: str | None) -> WrkResult:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


# ---------------------------------------------------------- owned resources


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@contextmanager
def server(env: dict[str, str], port: int) -> Iterator[str]:
    """One uvicorn process; yields its base URL once /healthz answers, stops it at the end."""
    uvicorn = ROOT / ".venv" / "bin" / "uvicorn"
    command = [str(uvicorn), "app.main:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_live(process, base_url, log)
            print(f"server {base_url} up (uvicorn pid {process.pid})")
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_live(process: subprocess.Popen[bytes], base_url: str, log: IO[str]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise BenchError(f"the server exited with {process.returncode}:\n{log.read()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise BenchError(f"the server did not answer /healthz within {STARTUP_TIMEOUT_SECONDS:.0f} s")


# ------------------------------------------------------------------ the user


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


def expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise BenchError(f"{what}: expected {status}, got {response.status_code}: {response.text}")


# ------------------------------------------------------------------ the report


def report(healthz: WrkResult, me: WrkResult, args: argparse.Namespace) -> bool:
    ratio = me.rps / healthz.rps
    print()
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, one uvicorn process")
    print(f"{'route':<26}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'requests':>11}")
    for name, result in (("GET /healthz", healthz), ("GET /api/v1/users/me", me)):
        print(
            f"{name:<26}{result.rps:>10.0f}{result.p50_ms:>10.2f}{result.p99_ms:>10.2f}{result.requests:>11}"
        )
    for name, result in (("/healthz", healthz), ("/users/me", me)):
        if result.socket_errors:
            print(f"warning: {name} socket errors: {result.socket_errors}")
    meets = ratio >= TARGET_RATIO
    verdict = "meets" if meets else "BELOW"
    print(f"ratio users/me / healthz: {ratio:.2f} ({verdict} the target of >= {TARGET_RATIO})")
    return meets


# ------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="open connections (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432"),
        help="server URL without a database name (env BENCH_POSTGRES_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
        help="Redis URL with the DB index to use (env BENCH_REDIS_URL)",
    )
    parser.add_argument("--database", default="app_bench", help="scratch database, dropped and created")
    parser.add_argument("--check", action="store_true", help="exit 2 when the ratio is below the target")
    args = parser.parse_args()
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads (wrk needs one per thread)")
    return args


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
    }


def bench(args: argparse.Namespace) -> bool:
    with (
        scratch_database(args.postgres_url, args.database) as database_url,
        redis_prefix(args.redis_url) as prefix,
    ):
        print(f"database {args.database}, Redis {args.redis_url} prefix {prefix}")
        migrate(Settings(_env_file=None, environment="test", database_url=database_url))  # type: ignore[call-arg]
        port = free_port()
        with server(server_env(database_url, args.redis_url, prefix), port) as base_url:
            cookie = f"{SESSION_COOKIE}={login_session(base_url)}"
            print("registered and logged in a user")
            healthz = measure(f"{base_url}/healthz", args, cookie=None)
            me = measure(f"{base_url}{API}/users/me", args, cookie=cookie)
    return report(healthz, me, args)


def measure(url: str, args: argparse.Namespace, *, cookie: str | None) -> WrkResult:
    """A short warm-up run, then the measured one, which must have answered only 2xx."""
    print(f"{url}: {WARMUP_SECONDS} s warm-up, {args.duration} s measured")
    for duration in (WARMUP_SECONDS, args.duration):
        result = run_wrk(
            url, duration=duration, connections=args.connections, threads=args.threads, cookie=cookie
        )
        if result.non_2xx:
            raise BenchError(
                f"{url}: {result.non_2xx} of {result.requests} responses were not 2xx (401: the session "
                "was not accepted; 503: a backing service refused, e.g. more concurrent requests than "
                "the Redis client's pool of 100 connections); the figures would be meaningless"
            )
    return result


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed; install it first (Debian/Ubuntu: apt-get install wrk)", file=sys.stderr)
        return 1
    # SIGTERM unwinds like Ctrl-C, so the server, the database and the keys are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        meets = bench(args)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    return 2 if args.check and not meets else 0


if __name__ == "__main__":
    sys.exit(main())
