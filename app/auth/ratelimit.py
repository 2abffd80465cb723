"""Rate limits (API.md section 3) with slowapi, counted in Redis (in memory on the
embedded default), failing closed.

slowapi's decorator needs the limit key before the endpoint runs, but the login
limit is also per submitted username, which is in the JSON body; and its checks are
synchronous Redis calls that would stall the event loop while Redis is slow. So we
configure slowapi's Limiter (storage, strategy, key prefix, no silent fallback) and
hit its `limits` strategy from a worker thread, after the body is parsed. An
unreachable Redis raises, which answers 503: never "no limit".
"""

import ipaddress
import math
import time
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from fastapi import Depends
from limits import RateLimitItem, parse
from slowapi import Limiter
from starlette.requests import HTTPConnection

from app.audit import audit, client_ip
from app.auth.sessions.types import RefreshLimit
from app.config import Settings
from app.errors import AppError, ErrorCode
from app.state import Key, state_of


@dataclass(frozen=True, slots=True)
class Limits:
    login: RateLimitItem
    register: RateLimitItem
    # Counted by the session store itself, in the login's record, in the same round trip
    # as the rotation (app/auth/sessions/scripts/refresh.lua).
    refresh: RefreshLimit


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        options: dict[str, object] = {}
        if settings.redis_url:
            storage_uri = settings.redis_url
            options = {
                "key_prefix": f"{settings.redis_key_prefix}rl",
                # A hanging Redis must become a 503 within seconds, as for sessions. A
                # hit that lands after its 503 counts an attempt that was refused anyway:
                # the limit errs strict, never lenient.
                "socket_timeout": settings.redis_timeout_seconds,
                "socket_connect_timeout": settings.redis_timeout_seconds,
            }
        else:
            storage_uri = "memory://"
        self.limiter = Limiter(
            key_func=client_ip,
            storage_uri=storage_uri,
            storage_options=options,  # type: ignore[arg-type]
            strategy="moving-window",
            swallow_errors=False,
            in_memory_fallback_enabled=False,
            # slowapi also reads RATELIMIT_* variables (environment, .env); we set none.
        )
        refresh = parse(settings.refresh_rate_limit)
        self.limits = Limits(
            login=parse(settings.login_rate_limit),
            register=parse(settings.register_rate_limit),
            refresh=RefreshLimit(refresh.amount, refresh.get_expiry()),
        )

    def _hit(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """None when allowed, else the seconds until the window frees a slot."""
        strategy = self.limiter.limiter
        if strategy.hit(item, *identifiers):
            return None
        reset_at = strategy.get_window_stats(item, *identifiers).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    async def check(
        self, request: HTTPConnection, item: RateLimitItem, scope: str, *identifiers: str
    ) -> None:
        retry_after = await anyio.to_thread.run_sync(self._hit, item, scope, *identifiers)
        if retry_after is not None:
            audit(request, "rate_limited", "denied", scope=scope)
            raise AppError(ErrorCode.RATE_LIMITED, headers={"Retry-After": str(retry_after)})

    async def check_login_address(self, request: HTTPConnection) -> None:
        """Per client address (see `address_key`), before anything else of a login runs."""
        await self.check(request, self.limits.login, "login-ip", address_key(client_ip(request)))

    async def check_login_account(
        self, request: HTTPConnection, user_id: int | None, identifier: str
    ) -> None:
        """Per account once the identifier resolves to one, whether by username or email
        (else per submitted string, case-folded), before the password is checked: rotating
        addresses against one account escapes no limit, and the username and the email are
        one budget. The answer is the same 429 whether or not the identifier resolved."""
        subject = (
            ("login-account", str(user_id)) if user_id is not None else ("login-user", identifier.casefold())
        )
        await self.check(request, self.limits.login, *subject)

    async def check_login_device(self, request: HTTPConnection, device_hash: str) -> None:
        """Per device cookie (app/auth/devices.py): what a login from a known device is
        counted under instead of its account."""
        await self.check(request, self.limits.login, "login-device", device_hash)


RATE_LIMITS: Key[RateLimits] = Key("rate_limits")


def address_key(host: str) -> str:
    """What one client's budget is counted under: an IPv4 address (also when written as
    IPv6, `::ffff:203.0.113.77`, in any spelling), or an IPv6 address's /64, the smallest
    block a subscriber is given (RFC 6177): one host rotating through its /64 is one client."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an address (a test transport's name): counted as sent
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


async def _per_ip(request: HTTPConnection) -> None:
    limits = state_of(request)[RATE_LIMITS]
    # Counted per route (its path), so that one route's traffic never uses up another's.
    await limits.check(request, limits.limits.register, request.url.path, address_key(client_ip(request)))


def per_ip() -> Any:
    """A dependency limiting a route per client IP at REGISTER_RATE_LIMIT."""
    return Depends(_per_ip)
