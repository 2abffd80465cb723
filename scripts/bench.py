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

Then, on the same server process, a second benchmark (skip it with --skip-login-storm):
p50/p99 of GET /api/v1/users/me at low concurrency (-c8, so that latency means
something) without, then with, a login storm: 8 clients, in a load generator
process of their own, each logging in again as soon as its previous login answered,
for the whole wrk run. Password hashing (Argon2id) runs in threads, off the event
loop, so that a burst of logins does not stall other requests; the ratio of the two
p99s says how well that holds on this machine. It prints the CPU cores and what one
Argon2id verify costs alone: the logins compete with everything else for those cores.

Then, still on the same server process, a third (skip it with --skip-fanout): live-update
fan-out. 1,000 WebSockets on /api/v1/ws (50 users' logins, 20 sockets each: the per-user
limit), opened from this process with the `websockets` client, which offers
permessage-deflate as browsers do (the server declines it, as docker/entrypoint.sh runs
it; --fanout-deflate accepts it); one more user creates public items one at a time (30 measured after 3 warm-up ones). For
each item: the time from its POST's response to its item.created event reaching the
last of the sockets (p50 and p99), and to the first; and the server's resident memory
per socket (VmRSS before and after opening them, divided by their number). The client
shares the machine: on few cores its own receiving is part of the figure.

    .venv/bin/python scripts/bench.py [--duration 10] [--connections 32] [--threads 1]
        [--skip-login-storm] [--latency-connections 8] [--login-clients 8]
        [--skip-fanout] [--fanout-sockets 1000] [--fanout-users N] [--fanout-posts 30]
"""

import argparse
import asyncio
import http.client
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import asyncpg
import httpx
from redis import Redis
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.auth.passwords import password_helper  # noqa: E402
from app.ops.bootstrap import migrate  # noqa: E402
from app.config import Settings  # noqa: E402
from app.live.hub import MAX_SOCKETS_PER_USER  # noqa: E402
from tests.fixtures.server import free_port, stop, wait_until_live  # noqa: E402

TARGET_RATIO = 0.5
API = "/api/v1"
SESSION_COOKIE = "session"  # the names with COOKIE_SECURE=false (API.md section 2)
CSRF_COOKIE = "csrftoken"
SECRET_KEY = "bench-secret-key-" + "x" * 40
PASSWORD = "Bench-password-that-is-long-enough-1"
WARMUP_SECONDS = 2
# The login storm: wrk's default 2 s timeout would drop exactly the slow requests
# it is there to measure from the latency distribution.
LATENCY_WRK_TIMEOUT = "30s"
LOGIN_TIMEOUT_SECONDS = 30.0
STORM_WORKER = "--login-storm-worker"  # argv[1] of the load generator process (see main)


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


@dataclass(frozen=True)
class Argon2Cost:
    parameters: str  # as in the hash: m=<KiB>,t=<passes>,p=<lanes>
    wall_s: float  # one verify, alone, in this process
    cpu_s: float  # CPU time of that verify, all its threads


@dataclass(frozen=True)
class StormResult:
    baseline: WrkResult  # users/me without logins
    stormed: WrkResult  # users/me while the clients log in
    logins: int  # completed during the stormed wrk run
    seconds: float  # length of that run, as the parent measured it
    login_p50_ms: float
    login_p99_ms: float
    cores: int
    load_average: float  # 1 min, at the start: the machine may be shared
    argon2: Argon2Cost


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


def run_wrk(
    url: str,
    *,
    duration: int,
    connections: int,
    threads: int,
    cookie: str | None,
    timeout: str | None = None,
) -> WrkResult:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if timeout:
        command += ["--timeout", timeout]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


# ---------------------------------------------------------- owned resources


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


class ServerProcess(NamedTuple):
    base_url: str
    pid: int


@contextmanager
def server(env: dict[str, str], port: int, *, ws_deflate: bool = False) -> Iterator[ServerProcess]:
    """One uvicorn process, with docker/entrypoint.sh's WebSocket setting unless told
    otherwise; yields its base URL and pid once /healthz answers, stops it at the end."""
    uvicorn = ROOT / ".venv" / "bin" / "uvicorn"
    command = [str(uvicorn), "app.main:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    command += ["--ws-per-message-deflate", "true" if ws_deflate else "false"]
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


def expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise BenchError(f"{what}: expected {status}, got {response.status_code}: {response.text}")


# ------------------------------------------------------- the login storm


class StormClient:
    """One client of the load generator: a keep-alive connection, one CSRF dance, then
    correct-password logins back to back until told to stop. Runs in its own thread;
    http.client and threads rather than an event loop, as a browser would: each client
    waits for its answer before asking again, whatever the other clients do."""

    def __init__(self, base_url: str, username: str, stop: threading.Event) -> None:
        self.base_url = base_url
        self.username = username
        self.stop = stop
        self.ready = threading.Event()  # set after the first login (or on failure)
        self.logins: list[tuple[float, float]] = []  # time.monotonic() at request and at answer
        self.error: str | None = None

    def run(self) -> None:
        parts = urlsplit(self.base_url)
        host = parts.hostname or "127.0.0.1"
        connection = http.client.HTTPConnection(host, parts.port, timeout=LOGIN_TIMEOUT_SECONDS)
        try:
            connection.request("GET", f"{API}/auth/csrf")
            response = connection.getresponse()
            response.read()
            cookies: SimpleCookie = SimpleCookie()
            for header in response.headers.get_all("set-cookie") or []:
                cookies.load(header)
            if response.status != 200 or CSRF_COOKIE not in cookies:
                raise BenchError(f"GET /auth/csrf: {response.status}, cookies {sorted(cookies)}")
            csrf = cookies[CSRF_COOKIE].value
            # The cookies each login sets are dropped: every login starts from the same
            # anonymous CSRF token and presents no session (so it revokes none).
            headers = {
                "Content-Type": "application/json",
                "X-CSRF-Token": csrf,
                "Cookie": f"{CSRF_COOKIE}={csrf}",
            }
            body = json.dumps({"username": self.username, "password": PASSWORD})
            while True:
                started = time.monotonic()
                connection.request("POST", f"{API}/auth/login", body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                finished = time.monotonic()
                if response.status != 200:
                    raise BenchError(f"POST /auth/login: {response.status}: {answer[:300]!r}")
                self.logins.append((started, finished))
                self.ready.set()
                if self.stop.is_set():
                    return
        except (OSError, http.client.HTTPException, BenchError) as exc:
            self.error = f"{self.username}: {exc!r}"
        finally:
            self.ready.set()
            connection.close()


def storm_worker(base_url: str, usernames: list[str]) -> int:
    """The load generator process. Prints "ready" once every client has logged in once,
    logs in until its stdin is closed, then prints one JSON line: every login's
    (start, end) in time.monotonic() seconds (CLOCK_MONOTONIC, the same clock in every
    process of this machine) and the errors, if any."""
    stop = threading.Event()
    clients = [StormClient(base_url, username, stop) for username in usernames]
    threads = [threading.Thread(target=client.run, daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    for client in clients:
        client.ready.wait()
    if not any(client.error for client in clients):
        print("ready", flush=True)
        sys.stdin.read()  # until the parent closes our stdin
    stop.set()
    for thread in threads:
        thread.join()
    logins = [login for client in clients for login in client.logins]
    errors = [client.error for client in clients if client.error]
    print(json.dumps({"logins": logins, "errors": errors}), flush=True)
    return 0


def under_login_storm(
    base_url: str, usernames: list[str], run: Callable[[], WrkResult]
) -> tuple[WrkResult, list[float], float]:
    """Runs `run` while one client per username logs in continuously (from another process).
    Returns its result, the latencies in ms of the logins completed during it, and its length in s."""
    command = [sys.executable, str(Path(__file__).resolve()), STORM_WORKER, base_url, *usernames]
    with tempfile.TemporaryFile(mode="w+") as stderr:
        worker = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        assert worker.stdout is not None
        try:
            first = worker.stdout.readline()
            if first.strip() != "ready":
                worker.wait(timeout=LOGIN_TIMEOUT_SECONDS)
                stderr.seek(0)
                raise BenchError(
                    f"the login storm did not start: {first}{worker.stdout.read()}{stderr.read()}"
                )
            started = time.monotonic()
            result = run()
            finished = time.monotonic()
            output, _ = worker.communicate(timeout=2 * LOGIN_TIMEOUT_SECONDS)  # closes its stdin: stop
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        if worker.returncode != 0:
            stderr.seek(0)
            raise BenchError(f"the login storm exited with {worker.returncode}:\n{stderr.read()}")
    report = json.loads(output)
    if report["errors"]:
        raise BenchError("login storm: " + "; ".join(report["errors"]))
    latencies = [(end - start) * 1000 for start, end in report["logins"] if started <= end <= finished]
    return result, latencies, finished - started


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below it."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def argon2_cost(rounds: int = 3) -> Argon2Cost:
    """The app's own Argon2id parameters, and one verify timed alone (wall and CPU of all
    its threads): the fastest of a few, in this process, while the server is idle."""
    hashed = password_helper.hash(PASSWORD)
    match = re.search(r"\$(m=\d+,t=\d+,p=\d+)\$", hashed)
    best_wall = best_cpu = math.inf
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        password_helper.verify_and_update(PASSWORD, hashed)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    parameters = match[1] if match else hashed.split("$")[3]
    return Argon2Cost(parameters=parameters, wall_s=best_wall, cpu_s=best_cpu)


def login_storm(base_url: str, cookie: str, args: argparse.Namespace) -> StormResult:
    load_average = os.getloadavg()[0]
    usernames = register_users(base_url, args.login_clients)
    argon2 = argon2_cost()  # while the server is idle
    url = f"{base_url}{API}/users/me"
    connections = args.latency_connections
    print(f"login storm: {url} at -c{connections}, without then with {args.login_clients} clients logging in")
    baseline = measure(url, args, cookie=cookie, connections=connections, timeout=LATENCY_WRK_TIMEOUT)

    def stormed_run() -> WrkResult:
        print(f"{url}: {args.duration} s measured while {args.login_clients} clients log in")
        result = run_wrk(
            url,
            duration=args.duration,
            connections=connections,
            threads=args.threads,
            cookie=cookie,
            timeout=LATENCY_WRK_TIMEOUT,
        )
        require_2xx(url, result)
        return result

    stormed, latencies, seconds = under_login_storm(base_url, usernames, stormed_run)
    if not latencies:
        raise BenchError("no login completed during the stormed run")
    return StormResult(
        baseline=baseline,
        stormed=stormed,
        logins=len(latencies),
        seconds=seconds,
        login_p50_ms=percentile(latencies, 0.50),
        login_p99_ms=percentile(latencies, 0.99),
        cores=len(os.sched_getaffinity(0)),
        load_average=load_average,
        argon2=argon2,
    )


# ------------------------------------------------------------- live-update fan-out


FANOUT_WARMUP_POSTS = 3
FANOUT_DELIVERY_TIMEOUT_SECONDS = 30.0
FANOUT_CONNECT_BATCH = 50  # sockets opened concurrently: a burst, not a thundering herd


@dataclass(frozen=True)
class FanoutResult:
    sockets: int
    users: int
    posts: int
    deflate: bool
    last_p50_ms: float  # POST answered -> the event at the last socket (< 0: before the answer)
    last_p99_ms: float
    sent_last_p50_ms: float  # POST sent -> the event at the last socket
    sent_last_p99_ms: float
    first_p50_ms: float  # POST answered -> the event at the first socket
    post_p50_ms: float  # the POST's own round trip
    open_seconds: float
    rss_before_kib: int
    rss_after_kib: int
    active_gauge: float


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        limit = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def gauge(base_url: str, name: str) -> float:
    for line in httpx.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise BenchError(f"{name} is not in /metrics")


class Arrivals:
    """When each socket received each item: count, first and last time.monotonic()."""

    def __init__(self, sockets: int) -> None:
        self.sockets = sockets
        self.seen: dict[int, list[float]] = {}
        self.complete: dict[int, asyncio.Event] = {}

    def expect(self, item_id: int) -> asyncio.Event:
        return self.complete.setdefault(item_id, asyncio.Event())

    def record(self, item_id: int, at: float) -> None:
        entry = self.seen.get(item_id)
        if entry is None:
            entry = self.seen[item_id] = [0, at, at]
        entry[0] += 1
        entry[2] = at
        if entry[0] == self.sockets:
            self.expect(item_id).set()


async def _read_socket(ws: ClientConnection, arrivals: Arrivals) -> None:
    async for raw in ws:
        at = time.monotonic()
        message = json.loads(raw)
        if message.get("type") == "item.created":
            arrivals.record(message["item"]["id"], at)


async def _fanout(
    base_url: str, pid: int, args: argparse.Namespace, tokens: list[str], poster: str
) -> FanoutResult:
    ws_url = base_url.replace("http://", "ws://", 1) + f"{API}/ws"
    arrivals = Arrivals(args.fanout_sockets)
    sockets: list[ClientConnection] = []
    readers: list[asyncio.Task[None]] = []

    async def open_one(index: int) -> ClientConnection:
        headers = {"Cookie": f"{SESSION_COOKIE}={tokens[index % len(tokens)]}", "Origin": base_url}
        return await ws_connect(
            ws_url,
            additional_headers=headers,
            open_timeout=30,
            ping_interval=None,
            compression="deflate",  # offered, as browsers do; the server decides
        )

    try:
        rss_before = rss_kib(pid)
        started = time.monotonic()
        for first in range(0, args.fanout_sockets, FANOUT_CONNECT_BATCH):
            batch = range(first, min(first + FANOUT_CONNECT_BATCH, args.fanout_sockets))
            sockets += await asyncio.gather(*(open_one(i) for i in batch))
        open_seconds = time.monotonic() - started
        readers = [asyncio.create_task(_read_socket(ws, arrivals)) for ws in sockets]
        await asyncio.sleep(1)  # let the server settle before reading its memory
        rss_after = rss_kib(pid)
        active = await asyncio.to_thread(gauge, base_url, "websocket_connections_active")

        last: list[float] = []
        sent_last: list[float] = []
        first_seen: list[float] = []
        posts: list[float] = []
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            # The CSRF token is bound to the session it is issued with.
            response = await client.get(f"{API}/auth/csrf", headers={"Cookie": f"{SESSION_COOKIE}={poster}"})
            expect(response, 200, "GET /auth/csrf")
            csrf = response.cookies.get(CSRF_COOKIE) or ""
            client.cookies.clear()
            headers = {"X-CSRF-Token": csrf, "Cookie": f"{CSRF_COOKIE}={csrf}; {SESSION_COOKIE}={poster}"}
            for n in range(FANOUT_WARMUP_POSTS + args.fanout_posts):
                body = {"title": f"fan-out {n}", "description": "x" * 200}
                sent = time.monotonic()
                response = await client.post(f"{API}/items", json=body, headers=headers)
                answered = time.monotonic()
                expect(response, 201, "POST /items")
                item_id = response.json()["id"]
                try:
                    async with asyncio.timeout(FANOUT_DELIVERY_TIMEOUT_SECONDS):
                        await arrivals.expect(item_id).wait()
                except TimeoutError:
                    count = arrivals.seen.get(item_id, [0])[0]
                    raise BenchError(
                        f"item {item_id} reached {count} of {args.fanout_sockets} sockets "
                        f"within {FANOUT_DELIVERY_TIMEOUT_SECONDS:.0f} s"
                    ) from None
                if n >= FANOUT_WARMUP_POSTS:
                    _count, first_at, last_at = arrivals.seen[item_id]
                    last.append((last_at - answered) * 1000)
                    sent_last.append((last_at - sent) * 1000)
                    first_seen.append((first_at - answered) * 1000)
                    posts.append((answered - sent) * 1000)
                await asyncio.sleep(0.05)  # one item at a time: each is measured alone
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return FanoutResult(
        sockets=len(sockets),
        users=len(tokens),
        posts=len(last),
        deflate=bool(sockets)
        and "permessage-deflate" in (sockets[0].response.headers.get("Sec-WebSocket-Extensions") or ""),
        last_p50_ms=percentile(last, 0.50),
        last_p99_ms=percentile(last, 0.99),
        sent_last_p50_ms=percentile(sent_last, 0.50),
        sent_last_p99_ms=percentile(sent_last, 0.99),
        first_p50_ms=percentile(first_seen, 0.50),
        post_p50_ms=percentile(posts, 0.50),
        open_seconds=open_seconds,
        rss_before_kib=rss_before,
        rss_after_kib=rss_after,
        active_gauge=active,
    )


def fanout(base_url: str, pid: int, args: argparse.Namespace) -> FanoutResult:
    print(f"fan-out: {args.fanout_sockets} sockets over {args.fanout_users} users, {args.fanout_posts} items")
    tokens = [login_session(base_url) for _ in range(args.fanout_users)]
    poster = login_session(base_url)
    return asyncio.run(_fanout(base_url, pid, args, tokens, poster))


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


def report_storm(storm: StormResult, args: argparse.Namespace) -> None:
    argon2 = storm.argon2
    print()
    print(
        f"login storm: wrk -t{args.threads} -c{args.latency_connections} -d{args.duration}s on users/me, "
        f"{args.login_clients} clients logging in back to back, one uvicorn process"
    )
    print(
        f"CPU cores: {storm.cores} (os.cpu_count {os.cpu_count()}), load average {storm.load_average:.1f} "
        "at the start; the server is one process, Argon2 hashes in threads"
    )
    print(
        f"Argon2id {argon2.parameters}: "
        f"one verify alone {argon2.wall_s * 1000:.0f} ms wall, {argon2.cpu_s * 1000:.0f} ms CPU "
        f"(at most ~{storm.cores / argon2.cpu_s:.1f} logins/s on {storm.cores} cores)"
    )
    print(f"{'load':<36}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'requests':>11}")
    rows = (
        ("GET users/me, no logins", storm.baseline),
        (f"GET users/me, {args.login_clients} clients logging in", storm.stormed),
    )
    for name, result in rows:
        print(
            f"{name:<36}{result.rps:>10.0f}{result.p50_ms:>10.2f}{result.p99_ms:>10.2f}{result.requests:>11}"
        )
    logins_per_second = storm.logins / storm.seconds
    print(
        f"{'POST auth/login (during the run)':<36}{logins_per_second:>10.1f}"
        f"{storm.login_p50_ms:>10.1f}{storm.login_p99_ms:>10.1f}{storm.logins:>11}"
    )
    for name, result in rows:
        if result.socket_errors:
            print(f"warning: {name}: socket errors: {result.socket_errors}")
    ratio = storm.stormed.p99_ms / storm.baseline.p99_ms
    print(f"users/me p99 with / without the login storm: {ratio:.1f}x")


def report_fanout(result: FanoutResult) -> None:
    print()
    print(
        f"live-update fan-out: {result.sockets} WebSockets ({result.users} users) on one uvicorn process, "
        f"opened in {result.open_seconds:.1f} s; /metrics websocket_connections_active {result.active_gauge:.0f}"
    )
    compression = "permessage-deflate" if result.deflate else "no compression"
    print(f"{result.posts} items created one at a time by another user; sockets with {compression}")
    print(
        f"POST /items answered -> item.created at the last socket: p50 {result.last_p50_ms:.1f} ms, "
        f"p99 {result.last_p99_ms:.1f} ms (at the first: p50 {result.first_p50_ms:.1f} ms)"
    )
    print(
        f"POST /items sent -> item.created at the last socket:     p50 {result.sent_last_p50_ms:.1f} ms, "
        f"p99 {result.sent_last_p99_ms:.1f} ms (the POST itself: p50 {result.post_p50_ms:.1f} ms)"
    )
    if result.last_p50_ms < 0:
        print(
            "(negative: every socket had the event before the POST's answer arrived; the event is "
            "published before the response is sent, and this worker's fan-out shares its event loop)"
        )
    delta = result.rss_after_kib - result.rss_before_kib
    print(
        f"server RSS {result.rss_before_kib / 1024:.1f} MiB -> {result.rss_after_kib / 1024:.1f} MiB: "
        f"{delta / result.sockets:.1f} KiB per socket"
    )


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
    parser.add_argument("--skip-login-storm", action="store_true", help="skip the second benchmark")
    parser.add_argument(
        "--latency-connections",
        type=int,
        default=8,
        help="wrk connections of the login storm benchmark (default 8)",
    )
    parser.add_argument(
        "--login-clients", type=int, default=8, help="clients logging in during the storm (default 8)"
    )
    parser.add_argument("--skip-fanout", action="store_true", help="skip the live-update fan-out benchmark")
    parser.add_argument(
        "--fanout-sockets", type=int, default=1000, help="WebSockets open during the fan-out (default 1000)"
    )
    parser.add_argument(
        "--fanout-users",
        type=int,
        default=None,
        help=f"users the sockets are spread over (default: as few as the limit of {MAX_SOCKETS_PER_USER} "
        "sockets per user allows)",
    )
    parser.add_argument("--fanout-posts", type=int, default=30, help="items measured (default 30)")
    parser.add_argument(
        "--fanout-deflate",
        action="store_true",
        help="let the server accept permessage-deflate (uvicorn's default; the deployment turns it off)",
    )
    args = parser.parse_args()
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads (wrk needs one per thread)")
    if args.latency_connections < args.threads:
        parser.error("--latency-connections must be at least --threads (wrk needs one per thread)")
    if args.login_clients < 1:
        parser.error("--login-clients must be at least 1")
    if args.fanout_users is None:
        args.fanout_users = math.ceil(args.fanout_sockets / MAX_SOCKETS_PER_USER)
    if args.fanout_users * MAX_SOCKETS_PER_USER < args.fanout_sockets:
        parser.error(f"--fanout-users: each user may hold at most {MAX_SOCKETS_PER_USER} sockets")
    if args.fanout_sockets < 1 or args.fanout_users < 1 or args.fanout_posts < 1:
        parser.error("--fanout-sockets, --fanout-users and --fanout-posts must be at least 1")
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
        # The login storm logs in far more often than a person would (and registers its users).
        "LOGIN_RATE_LIMIT": "1000000/minute",
        "REGISTER_RATE_LIMIT": "1000000/hour",
    }


def bench(args: argparse.Namespace) -> bool:
    with (
        scratch_database(args.postgres_url, args.database) as database_url,
        redis_prefix(args.redis_url) as prefix,
    ):
        print(f"database {args.database}, Redis {args.redis_url} prefix {prefix}")
        migrate(Settings(_env_file=None, environment="test", database_url=database_url))  # type: ignore[call-arg]
        port = free_port()
        env = server_env(database_url, args.redis_url, prefix)
        with server(env, port, ws_deflate=args.fanout_deflate) as (base_url, pid):
            cookie = f"{SESSION_COOKIE}={login_session(base_url)}"
            print("registered and logged in a user")
            healthz = measure(f"{base_url}/healthz", args, cookie=None)
            me = measure(f"{base_url}{API}/users/me", args, cookie=cookie)
            meets = report(healthz, me, args)
            if not args.skip_login_storm:
                print()
                report_storm(login_storm(base_url, cookie, args), args)
            if not args.skip_fanout:
                print()
                report_fanout(fanout(base_url, pid, args))
    return meets


def measure(
    url: str,
    args: argparse.Namespace,
    *,
    cookie: str | None,
    connections: int | None = None,
    timeout: str | None = None,
) -> WrkResult:
    """A short warm-up run, then the measured one, which must have answered only 2xx."""
    print(f"{url}: {WARMUP_SECONDS} s warm-up, {args.duration} s measured")
    for duration in (WARMUP_SECONDS, args.duration):
        result = run_wrk(
            url,
            duration=duration,
            connections=connections or args.connections,
            threads=args.threads,
            cookie=cookie,
            timeout=timeout,
        )
        require_2xx(url, result)
    return result


def require_2xx(url: str, result: WrkResult) -> None:
    if result.non_2xx:
        raise BenchError(
            f"{url}: {result.non_2xx} of {result.requests} responses were not 2xx (401: the session "
            "was not accepted; 503: a backing service refused, e.g. more concurrent requests than "
            "the Redis client's pool of 100 connections); the figures would be meaningless"
        )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == STORM_WORKER:  # the login storm's load generator
        return storm_worker(sys.argv[2], sys.argv[3:])
    args = parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed; install it first (Debian/Ubuntu: apt-get install wrk)", file=sys.stderr)
        return 1
    # SIGTERM unwinds like Ctrl-C, so the server, the database and the keys are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not args.skip_fanout:
        # Before the server starts, which inherits it: one descriptor per socket, both ends.
        raise_fd_limit(args.fanout_sockets + 1000)
    try:
        meets = bench(args)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    return 2 if args.check and not meets else 0


if __name__ == "__main__":
    sys.exit(main())
