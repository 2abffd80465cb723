"""Benchmarks of the API served by one uvicorn process on PostgreSQL and Redis, one module per
thing measured, run in this order on the same server process:

- bench.hotpath: GET /api/v1/users/me with a session cookie against GET /healthz (requests
  per second, p50/p99, and their ratio, whose target is >= 0.5): what the session costs
  every authenticated request, over the floor of the stack.
- bench.bearer (--skip-bearer): GET /api/v1/users/me by personal access token against the
  same by session cookie, interleaved (target: token >= 0.9 of cookie).
- bench.login_storm (--skip-login-storm): users/me p50/p99 at -c8 without, then with, 8
  clients logging in back to back from a load generator process (bench.storm_worker):
  whether Argon2id hashing stays off the event loop.
- bench.fanout (--skip-fanout): one item.created event reaching 1,000 WebSockets (p50/p99
  to the last socket), and the server's resident memory per socket.

Shared: bench.server (what a run owns and cleans up, also on failure: a scratch database,
a Redis key prefix, the uvicorn process and its settings, the users it registers),
bench.wrk (running wrk and reading its output), bench.common (the API's names, BenchError,
percentile). The server helpers underneath are the tests' (tests/fixtures/server.py).

Run from the repository root (it imports app and tests from there); needs wrk (Debian:
`apt-get install wrk`):

    .venv/bin/python -m bench [--duration 10] [--connections 32] [--threads 1]
        [--skip-login-storm] [--latency-connections 8] [--login-clients 8]
        [--skip-fanout] [--fanout-sockets 1000] [--fanout-users N] [--fanout-posts 30]

or `make bench BENCH_ARGS="..."`; `python -m bench --help` lists every option.

Adding a phase (the scale benchmark, bench/scale.py, is the next): a module like the three
above, a `run(...)` that measures and prints its report, raising BenchError when a figure
cannot be trusted. Its options go in bench.__main__.parse_args (with a --skip- option if it
is long), its call in bench.__main__.bench(): inside the `with server(...)` block if it
loads the shared server process, or after that block, on the same `env` (database and
Redis prefix), if it starts server processes of its own with bench.server.server().
"""
