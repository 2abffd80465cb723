"""The scale promise (API.md section 6): every listing of GET /items on a million items
within 2x of its time on a thousand, on PostgreSQL.

For each size, a database of its own (migrated, seeded by SQL, dropped at the end) and one
server on it; each listing is timed at one connection (sequential requests after a
warm-up, p50 and p90), anonymous and logged in, and the 1M/1k ratio printed per listing.
The seed: 1,000 owners (the benchmark's logged-in user among them), titles and
descriptions drawn from a fixed vocabulary, one item in five private; "common" words are
in every tenth row, the rare word in one row in 100,000 (ten at a million, none at a
thousand). The item indexes are dropped while seeding and made again after, as a bulk
load would (faster than maintaining them row by row), then the table is ANALYZEd.
"""

import argparse
import asyncio
import time
from dataclasses import dataclass

import asyncpg
import httpx

from bench.common import API, SESSION_COOKIE, percentile
from bench.server import login_session, owned_backends, server
from tests.fixtures.server import free_port

SIZES = (1_000, 1_000_000)
OWNERS = 1_000
WORDS = [
    "amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "heron", "iris", "juniper",
    "kelp", "lotus", "maple", "nectar", "onyx", "pearl", "quartz", "raven", "sage", "tundra",
]  # fmt: skip
COMMON = "lantern"  # in every tenth row (all public: rows n % 5 = 0 are the private ones)
RARE = "zephyrine"  # in one row in 100,000
LISTINGS = [
    ("first page, default sort", {}),
    ("q with a rare word", {"q": RARE}),
    ("q with a common word", {"q": COMMON}),
    ("sort=title", {"sort": "title"}),
    ("sort=-title", {"sort": "-title"}),
    ("sort=id", {"sort": "id"}),
    ("page 2 by cursor, sort=title", {"sort": "title", "cursor": "*"}),
    ("page 2 by cursor, q common", {"q": COMMON, "cursor": "*"}),
    ("offset=500000", {"offset": 500_000}),
]


@dataclass
class Timing:
    p50_ms: float
    p90_ms: float


def _seed_sql(size: int) -> list[str]:
    words = "ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "]"
    pick = f"({words})[1 + ((n * {{k}}) % {len(WORDS)})]"
    title = f"{pick.format(k=7)} || ' ' || {pick.format(k=13)} || ' ' || (n % 997)"
    description = (
        f"{pick.format(k=3)} || ' ' || {pick.format(k=11)} || ' ' || {pick.format(k=17)}"
        f" || CASE WHEN n % 10 = 3 THEN ' {COMMON}' ELSE '' END"
        f" || CASE WHEN n % 100000 = 7 THEN ' {RARE}' ELSE '' END"
    )
    return [
        'INSERT INTO "user" (email, username, hashed_password, is_active, is_superuser, is_verified, '
        "created_at, mfa_methods) SELECT 'owner' || u || '@example.com', 'owner' || u, '!', true, false, "
        f"true, now(), '' FROM generate_series(1, {OWNERS}) AS u",
        "INSERT INTO item (title, description, is_private, owner_id, created_at, updated_at) "
        f"SELECT {title}, {description}, n % 5 = 0, "
        f'(SELECT min(id) FROM "user") + (n % {OWNERS + 1}), '
        "now() - make_interval(secs => n), now() - make_interval(secs => n) "
        f"FROM generate_series(1, {size}) AS n",
    ]


async def _seed(database_url: str, size: int) -> float:
    started = time.monotonic()
    connection = await asyncpg.connect(database_url)
    try:
        indexes = await connection.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'item' AND indexname <> 'pk_item'"
        )
        for row in indexes:
            await connection.execute(f'DROP INDEX "{row["indexname"]}"')
        for statement in _seed_sql(size):
            await connection.execute(statement)
        for row in indexes:
            await connection.execute(row["indexdef"])
        await connection.execute("VACUUM ANALYZE item")
        await connection.execute('ANALYZE "user"')
    finally:
        await connection.close()
    return time.monotonic() - started


def _time(client: httpx.Client, params: dict[str, object], requests: int, cookie: str | None) -> Timing:
    headers = {"Cookie": cookie} if cookie else {}
    query = dict(params)
    if query.get("cursor") == "*":  # the next_cursor of the first page
        first = client.get(
            f"{API}/items", params={k: v for k, v in query.items() if k != "cursor"}, headers=headers
        )
        query["cursor"] = first.json()["next_cursor"]
    samples = []
    for attempt in range(requests + 5):
        sent = time.perf_counter()
        response = client.get(f"{API}/items", params=query, headers=headers)
        elapsed = (time.perf_counter() - sent) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"GET /items {query}: {response.status_code} {response.text[:200]}")
        if attempt >= 5:  # warm-up first
            samples.append(elapsed)
    return Timing(percentile(samples, 0.5), percentile(samples, 0.9))


def _measure(base_url: str, cookie: str, requests: int) -> dict[tuple[str, str], Timing]:
    out = {}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for who, sent in (("anonymous", None), ("logged in", cookie)):
            for name, params in LISTINGS:
                out[(name, who)] = _time(client, params, requests, sent)
    return out


def run(args: argparse.Namespace) -> dict[tuple[str, str], float]:
    """Both sizes, one after the other; the 1M/1k p50 ratio of every listing."""
    results: dict[int, dict[tuple[str, str], Timing]] = {}
    for size in SIZES:
        label = "1k" if size == 1_000 else "1m"
        with owned_backends(args.postgres_url, f"{args.database}_scale_{label}", args.redis_url) as env:
            # The logged-in user registers first: it owns some of the seeded items too.
            with server(env, free_port()) as (base_url, _pid):
                cookie = f"{SESSION_COOKIE}={login_session(base_url)}"
                seconds = asyncio.run(_seed(env["DATABASE_URL"], size))
                print(f"seeded {size:,} items in {seconds:.0f} s")
                results[size] = _measure(base_url, cookie, args.scale_requests)
    small, large = results[SIZES[0]], results[SIZES[1]]
    print(f"\nGET /items, p50 (p90) ms at one connection, {args.scale_requests} requests each")
    print(f"{'listing':34} {'who':10} {'1k items':>16} {'1M items':>16} {'1M/1k':>6}")
    ratios = {}
    for key in small:
        a, b = small[key], large[key]
        ratios[key] = b.p50_ms / a.p50_ms
        print(
            f"{key[0]:34} {key[1]:10} {a.p50_ms:8.1f} ({a.p90_ms:5.1f}) {b.p50_ms:8.1f} ({b.p90_ms:5.1f})"
            f" {ratios[key]:6.2f}"
        )
    return ratios
