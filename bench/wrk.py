"""Running wrk and reading its output: requests per second, p50/p99 latency, error counters.

Every HTTP figure of the package comes from here, so that they are all measured the same
way: a short warm-up run first, and only runs that answered nothing but 2xx count."""

import argparse
import re
import subprocess
from dataclasses import dataclass

from bench.common import BenchError

WARMUP_SECONDS = 2


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: str | None


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
    header: str | None = None,
) -> WrkResult:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if timeout:
        command += ["--timeout", timeout]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    if header:
        command += ["-H", header]
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def measure(
    url: str,
    args: argparse.Namespace,
    *,
    cookie: str | None,
    connections: int | None = None,
    timeout: str | None = None,
    refused: bool = False,
    header: str | None = None,
) -> WrkResult:
    """A short warm-up run, then the measured one, which must have answered only 2xx (only
    errors, when `refused`: a request measured for its refusal, a 401 say)."""
    print(f"{url}: {WARMUP_SECONDS} s warm-up, {args.duration} s measured")
    for duration in (WARMUP_SECONDS, args.duration):
        result = run_wrk(
            url,
            duration=duration,
            connections=connections or args.connections,
            threads=args.threads,
            cookie=cookie,
            timeout=timeout,
            header=header,
        )
        if not refused:
            require_2xx(url, result)
        elif result.non_2xx != result.requests:
            raise BenchError(
                f"{url}: {result.requests - result.non_2xx} of {result.requests} answers were 2xx"
            )
    return result


def require_2xx(url: str, result: WrkResult) -> None:
    if result.non_2xx:
        raise BenchError(
            f"{url}: {result.non_2xx} of {result.requests} responses were not 2xx (401: the session "
            "was not accepted; 503: a backing service refused, e.g. more concurrent requests than "
            "the Redis client's pool of 100 connections); the figures would be meaningless"
        )
