"""The login storm: does a burst of logins stall the other requests?

What it measures: p50/p99 of two bystanders, GET /api/v1/users/me (Redis only) and
GET /api/v1/items?limit=20 (a PostgreSQL query, so a login storm that held the pool
shows there), at low concurrency (-c8, so that latency means something) without, then
with, a login storm: 8 clients, in a load
generator process of their own (bench.storm_worker), each logging in again as soon as
its previous login answered, for the whole wrk run; and the logins' own rate and latency.

Why: password hashing (Argon2id) runs in threads, off the event loop, so that a burst of
logins does not stall other requests; the ratio of the two p99s says how well that holds
on this machine. It prints the CPU cores and what one Argon2id verify costs alone: the
logins compete with everything else for those cores."""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from app.auth.passwords import password_helper
from bench.common import API, PASSWORD, ROOT, BenchError, percentile
from bench.server import register_users
from bench.storm_worker import LOGIN_TIMEOUT_SECONDS, STORM_WORKER
from bench.wrk import WrkResult, measure, require_2xx, run_wrk

# wrk's default 2 s timeout would drop exactly the slow requests it is there to measure
# from the latency distribution.
LATENCY_WRK_TIMEOUT = "30s"


T = TypeVar("T")


@dataclass(frozen=True)
class Argon2Cost:
    parameters: str  # as in the hash: m=<KiB>,t=<passes>,p=<lanes>
    wall_s: float  # one verify, alone, in this process
    cpu_s: float  # CPU time of that verify, all its threads


@dataclass(frozen=True)
class StormResult:
    baseline: WrkResult  # users/me without logins
    stormed: WrkResult  # users/me while the clients log in
    items_baseline: WrkResult  # items?limit=20 without logins
    items_stormed: WrkResult  # the same, while the clients log in
    logins: int  # completed during the stormed wrk run
    seconds: float  # length of that run, as the parent measured it
    login_p50_ms: float
    login_p99_ms: float
    cores: int
    load_average: float  # 1 min, at the start: the machine may be shared
    argon2: Argon2Cost


def under_login_storm(
    base_url: str, usernames: list[str], run: Callable[[], T]
) -> tuple[T, list[float], float]:
    """Runs `run` while one client per username logs in continuously (from another process).
    Returns its result, the latencies in ms of the logins completed during it, and its length in s."""
    command = [sys.executable, "-m", "bench", STORM_WORKER, base_url, *usernames]
    with tempfile.TemporaryFile(mode="w+") as stderr:
        # cwd: where `-m bench` finds the package, whatever directory this run started in.
        worker = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True
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
    urls = (f"{base_url}{API}/users/me", f"{base_url}{API}/items?limit=20")
    connections = args.latency_connections
    print(
        f"login storm: {', '.join(urls)} at -c{connections}, without then with {args.login_clients} clients logging in"
    )
    baseline, items_baseline = (
        measure(url, args, cookie=cookie, connections=connections, timeout=LATENCY_WRK_TIMEOUT)
        for url in urls
    )

    def stormed_run(url: str) -> WrkResult:
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

    (stormed, items_stormed), latencies, seconds = under_login_storm(
        base_url, usernames, lambda: (stormed_run(urls[0]), stormed_run(urls[1]))
    )
    if not latencies:
        raise BenchError("no login completed during the stormed run")
    return StormResult(
        baseline=baseline,
        stormed=stormed,
        items_baseline=items_baseline,
        items_stormed=items_stormed,
        logins=len(latencies),
        seconds=seconds,
        login_p50_ms=percentile(latencies, 0.50),
        login_p99_ms=percentile(latencies, 0.99),
        cores=len(os.sched_getaffinity(0)),
        load_average=load_average,
        argon2=argon2,
    )


def run(base_url: str, cookie: str, args: argparse.Namespace) -> None:
    report(login_storm(base_url, cookie, args), args)


def report(storm: StormResult, args: argparse.Namespace) -> None:
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
        ("GET items?limit=20, no logins", storm.items_baseline),
        (f"GET items, {args.login_clients} clients logging in", storm.items_stormed),
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
    items_ratio = storm.items_stormed.p99_ms / storm.items_baseline.p99_ms
    print(f"items p99 with / without the login storm: {items_ratio:.1f}x")
