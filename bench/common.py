"""What every benchmark of the package shares: the API's names, the error that stops a run,
and the percentile the reports quote."""

import math
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1"
SESSION_COOKIE = "session"  # the names with COOKIE_SECURE=false (API.md section 2)
CSRF_COOKIE = "csrftoken"
PASSWORD = "Bench-password-that-is-long-enough-1"


class BenchError(Exception):
    """Something went wrong before a number could be trusted: printed, exit 1."""


def expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise BenchError(f"{what}: expected {status}, got {response.status_code}: {response.text}")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below it."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]
