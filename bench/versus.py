"""Every request next to the bare framework (issue 14's table): requests per second of
our routes as a fraction of a bare FastAPI app's `GET /ping` (bench/bare_app.py), both
served by one uvicorn process with the same flags, measured in interleaved runs and the
ratios taken within each repetition (the machine's load drifts between them).

Rows: `/healthz` (the floor of our stack: middleware, routing, JSON), `GET /users/me`
with a session (one Redis round trip), the same without one (401), and
`GET /items?limit=100` (about 21 KB: a query, 100 rows serialised)."""

import argparse
import statistics

import httpx

from bench.common import API, CSRF_COOKIE, expect
from bench.server import server
from bench.wrk import measure
from tests.fixtures.server import free_port

TARGETS = {"trivial": 0.90, "users/me": 0.60, "users/me 401": 0.80, "items?limit=100": 0.10}
DESCRIPTION = (
    "A description long enough to make a page of a hundred items weigh about twenty kilobytes in JSON."
)


def seed_items(base_url: str, cookie: str, count: int = 100) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        response = client.get(f"{API}/auth/csrf", headers={"Cookie": cookie})
        csrf = response.cookies.get(CSRF_COOKIE) or ""
        headers = {"X-CSRF-Token": csrf, "Cookie": f"{cookie}; {CSRF_COOKIE}={csrf}"}
        client.cookies.clear()
        for n in range(count):
            body = {"title": f"Bench item number {n:03d}", "description": DESCRIPTION}
            expect(client.post(f"{API}/items", json=body, headers=headers), 201, "POST /items")


def run(base_url: str, cookie: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, float]:
    seed_items(base_url, cookie)
    rows: dict[str, list[float]] = {name: [] for name in TARGETS}
    rates: dict[str, list[float]] = {"bare /ping": [], **{name: [] for name in TARGETS}}
    with server(env, free_port(), app="bench.bare_app:app") as (bare_url, _pid):
        for repetition in range(args.versus_repetitions):
            print(f"versus the bare app: repetition {repetition + 1} of {args.versus_repetitions}")
            bare = measure(f"{bare_url}/ping", args, cookie=None).rps
            measured = {
                "trivial": measure(f"{base_url}/healthz", args, cookie=None).rps,
                "users/me": measure(f"{base_url}{API}/users/me", args, cookie=cookie).rps,
                "users/me 401": measure(f"{base_url}{API}/users/me", args, cookie=None, refused=True).rps,
                "items?limit=100": measure(f"{base_url}{API}/items?limit=100", args, cookie=cookie).rps,
            }
            rates["bare /ping"].append(bare)
            for name, rps in measured.items():
                rates[name].append(rps)
                rows[name].append(rps / bare)
    print(f"\nrequests/s as a fraction of a bare FastAPI app's /ping, {args.versus_repetitions} interleaved")
    print(f"repetitions (wrk -c{args.connections} -d{args.duration}s, one uvicorn process each)")
    print(f"{'request':20}{'req/s (median)':>16}{'ratio median':>14}{'spread':>16}{'target':>8}")
    print(f"{'bare /ping':20}{statistics.median(rates['bare /ping']):>16.0f}{1.0:>14.2f}{'':>16}{'':>8}")
    medians = {}
    for name, ratios in rows.items():
        medians[name] = statistics.median(ratios)
        spread = f"{min(ratios):.3f}-{max(ratios):.3f}"
        print(
            f"{name:20}{statistics.median(rates[name]):>16.0f}{medians[name]:>14.3f}{spread:>16}"
            f"{TARGETS[name]:>8.2f}"
        )
    return medians
