"""`python -m bench`: the command line, and the phases run in order on one server process.

Also the entry point of the login storm's load generator (bench.storm_worker), which is
this same command started with `--login-storm-worker` as its first argument."""

import argparse
import math
import os
import shutil
import signal
import sys

from app.live.hub import MAX_SOCKETS_PER_USER
from bench import bearer, fanout, hotpath, login_storm, scale, versus
from bench.common import SESSION_COOKIE, BenchError
from bench.progress import plan
from bench.server import login_session, owned_backends, server
from bench.storm_worker import STORM_WORKER, storm_worker
from tests.fixtures.server import free_port

# The benchmark started as the hot path alone; its --help still opens with it.
DESCRIPTION = "Benchmark: GET /api/v1/users/me with a session cookie against GET /healthz."


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=DESCRIPTION)
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
    parser.add_argument("--skip-scale", action="store_true", help="skip the 1k/1M items benchmark")
    parser.add_argument(
        "--skip-versus", action="store_true", help="skip the comparison with a bare FastAPI app"
    )
    parser.add_argument("--skip-bearer", action="store_true", help="skip users/me by token against by cookie")
    parser.add_argument(
        "--versus-repetitions", type=int, default=3, help="interleaved runs against the bare app (default 3)"
    )
    parser.add_argument(
        "--scale-requests", type=int, default=30, help="requests timed per listing and size (default 30)"
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


def bench(args: argparse.Namespace) -> bool:
    """Every phase not skipped, in order; whether the hot path meets its target."""
    progress = plan(args)
    print(f"phases: {', '.join(name for name, _ in progress.phases)}", flush=True)
    with owned_backends(args.postgres_url, args.database, args.redis_url) as env:
        with server(env, free_port(), ws_deflate=args.fanout_deflate) as (base_url, pid):
            cookie = f"{SESSION_COOKIE}={login_session(base_url)}"
            print("registered and logged in a user")
            with progress.phase("users/me against /healthz"):
                meets = hotpath.run(base_url, cookie, args)
            if not args.skip_versus:
                with progress.phase("every request next to a bare FastAPI app"):
                    versus.run(base_url, cookie, env, args)
            if not args.skip_bearer:
                with progress.phase("users/me by token against by cookie"):
                    bearer.run(base_url, cookie, args)
            if not args.skip_login_storm:
                with progress.phase("users/me and items during a login storm"):
                    login_storm.run(base_url, cookie, args)
            if not args.skip_fanout:
                with progress.phase(f"fan-out to {args.fanout_sockets:,} WebSockets"):
                    fanout.run(base_url, pid, args)
        # Where a phase with server processes of its own plugs in (bench/__init__.py): after the
        # shared one has stopped, so that the two do not compete for the cores.
    if not args.skip_scale:
        with progress.phase("GET /items on 1k and 1M items"):
            scale.run(args)
    return meets


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == STORM_WORKER:  # the login storm's load generator
        return storm_worker(sys.argv[2], sys.argv[3:])
    args = parse_args()
    # Each line as it is printed, also through a pipe (make bench | tee bench.log).
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if shutil.which("wrk") is None:
        print("wrk is not installed; install it first (Debian/Ubuntu: apt-get install wrk)", file=sys.stderr)
        return 1
    # SIGTERM unwinds like Ctrl-C, so the server, the database and the keys are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not args.skip_fanout:
        # Before the server starts, which inherits it: one descriptor per socket, both ends.
        fanout.raise_fd_limit(args.fanout_sockets + 1000)
    try:
        meets = bench(args)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    return 2 if args.check and not meets else 0


if __name__ == "__main__":
    sys.exit(main())
