"""Live-update fan-out: how long one event takes to reach 1,000 WebSockets, and what each costs.

What it measures: 1,000 WebSockets on /api/v1/ws (50 users' logins, 20 sockets each: the
per-user limit), opened from this process with the `websockets` client, which offers
permessage-deflate as browsers do (the server declines it, as docker/entrypoint.sh runs
it; --fanout-deflate accepts it); one more user creates public items one at a time (30
measured after 3 warm-up ones). For each item: the time from its POST's response to its
item.created event reaching the last of the sockets (p50 and p99), and to the first; and
the server's resident memory per socket (VmRSS before and after opening them, divided by
their number).

Why: every item created is pushed to every open socket from the worker's event loop;
this is what that costs the worker at the scale one process is expected to hold. The
client shares the machine: on few cores its own receiving is part of the figure."""

import argparse
import asyncio
import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from bench.common import API, CSRF_COOKIE, SESSION_COOKIE, BenchError, expect, percentile
from bench.server import login_session

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


def run(base_url: str, pid: int, args: argparse.Namespace) -> None:
    report(fanout(base_url, pid, args))


def report(result: FanoutResult) -> None:
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
