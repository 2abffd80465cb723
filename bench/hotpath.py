"""The HTTP hot path: GET /api/v1/users/me with a session cookie against GET /healthz.

What it measures: requests per second and p50/p99 latency of both routes, served
by ONE uvicorn process and loaded by wrk from a second process, and the ratio
users/me rps / healthz rps.

Why: /healthz is the floor of what a request costs in this stack (uvicorn, the
middleware, routing, JSON). /users/me adds what every authenticated request pays:
reading the session cookie, one Redis round trip for the session and the user
snapshot, and the response model. The target is that an authenticated request runs
at no less than half the rate of /healthz (ratio >= 0.5); below that, the session
hot path costs more than the whole rest of the stack and is worth profiling."""

import argparse

from bench.common import API
from bench.wrk import WrkResult, measure

TARGET_RATIO = 0.5


def run(base_url: str, cookie: str, args: argparse.Namespace) -> bool:
    """Measures and reports both routes; whether the ratio meets the target."""
    healthz = measure(f"{base_url}/healthz", args, cookie=None)
    me = measure(f"{base_url}{API}/users/me", args, cookie=cookie)
    return report(healthz, me, args)


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
