"""`GET /users/me` by personal access token against the same by session cookie (issue 16):
the token path must run at no less than 0.9 of the cookie path. Both are one Redis round
trip on a hit (app/auth/tokens/service.py); the token's is a different script (its
entry, the user's token generation, the user snapshot) and the bearer header's parse.

Interleaved runs on the shared server, the ratio taken within each repetition; the
median and the range of the ratios are reported."""

import argparse
import statistics

import httpx

from bench.common import API, CSRF_COOKIE, expect
from bench.wrk import measure

TARGET_RATIO = 0.9


def create_token(base_url: str, cookie: str) -> str:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        response = client.get(f"{API}/auth/csrf", headers={"Cookie": cookie})
        csrf = response.cookies.get(CSRF_COOKIE) or ""
        headers = {"X-CSRF-Token": csrf, "Cookie": f"{cookie}; {CSRF_COOKIE}={csrf}"}
        client.cookies.clear()
        body = {"name": "bench", "scopes": ["profile:read"], "expires_in_days": 1}
        response = client.post(f"{API}/users/me/tokens", json=body, headers=headers)
        expect(response, 201, "POST /users/me/tokens")
        token = str(response.json()["token"])
        me = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
        expect(me, 200, "GET /users/me by token")
        return token


def run(base_url: str, cookie: str, args: argparse.Namespace) -> bool:
    token = create_token(base_url, cookie)
    url = f"{base_url}{API}/users/me"
    ratios, by_cookie, by_token = [], [], []
    for repetition in range(args.versus_repetitions):
        print(f"bearer vs cookie: repetition {repetition + 1} of {args.versus_repetitions}")
        cookie_run = measure(url, args, cookie=cookie)
        token_run = measure(url, args, cookie=None, header=f"Authorization: Bearer {token}")
        by_cookie.append(cookie_run.rps)
        by_token.append(token_run.rps)
        ratios.append(token_run.rps / cookie_run.rps)
    median = statistics.median(ratios)
    print()
    print(f"GET /users/me, wrk -c{args.connections}, {args.versus_repetitions} interleaved repetitions")
    print(f"{'path':<14}{'median req/s':>14}{'range':>22}")
    for name, rates in (("cookie", by_cookie), ("bearer token", by_token)):
        print(f"{name:<14}{statistics.median(rates):>14.0f}{f'{min(rates):.0f}-{max(rates):.0f}':>22}")
    meets = median >= TARGET_RATIO
    verdict = "meets" if meets else "BELOW"
    print(
        f"ratio token / cookie: median {median:.2f} (range {min(ratios):.2f}-{max(ratios):.2f}; "
        f"{verdict} the target of >= {TARGET_RATIO})"
    )
    return meets
