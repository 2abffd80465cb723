"""What the session store hands out and the interface both stores implement."""

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from app.auth.principal import SessionUser

# A cookie longer than this cannot be one we issued; it is refused without a lookup.
MAX_TOKEN_LENGTH = 128
SEEN_RESOLUTION_SECONDS = 60
USER_CACHE_SECONDS = 24 * 3600
# Live updates (app/live): the channel, under the key prefix, naming the logins a script ended.
REVOKED_CHANNEL = "live:revoked"


@dataclass(frozen=True, slots=True)
class LoginInfo:
    """One login as its user sees it in the list of sessions."""

    id: str
    user_id: int
    created_at: datetime
    last_seen_at: datetime
    user_agent: str
    ip: str


@dataclass(frozen=True, slots=True)
class ActiveSession:
    user_id: int
    login_id: str
    user: SessionUser | None  # None: not cached, the caller loads it and caches it


@dataclass(frozen=True, slots=True)
class Tokens:
    """What a login or a refresh hands to the browser."""

    session: str
    refresh: str
    session_ttl: int
    refresh_ttl: int  # what is left of the login's absolute lifetime
    login_id: str


class RefreshOutcome(StrEnum):
    ROTATED = "rotated"
    GRACE = "grace"  # already rotated, within the grace period: a concurrent tab
    REUSED = "reused"  # already rotated, after the grace period: the login is revoked
    INVALID = "invalid"  # unknown, expired or revoked


@dataclass(frozen=True, slots=True)
class RefreshResult:
    outcome: RefreshOutcome
    user_id: int | None = None
    login_id: str | None = None
    tokens: Tokens | None = field(default=None)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def new_login_id() -> str:
    return secrets.token_urlsafe(12)


def usable(token: str | None) -> bool:
    return bool(token) and len(token or "") <= MAX_TOKEN_LENGTH


def timestamp(value: str | float) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


class SessionStore(Protocol):
    async def create(
        self, user: SessionUser, *, session_ttl: int, refresh_ttl: int, user_agent: str, ip: str
    ) -> Tokens: ...
    async def read(self, token: str) -> ActiveSession | None: ...
    async def refresh(self, token: str, *, session_ttl: int, grace: int) -> RefreshResult: ...
    async def end_login(self, session: str | None, refresh: str | None) -> tuple[int, str] | None:
        """End the login of each token (logout); who was logged out first, or None."""
        ...

    async def revoke_login(self, user_id: int, login_id: str) -> bool: ...
    async def revoke_user(self, user_id: int, *, keep: str | None = None) -> int: ...
    async def list_user(self, user_id: int) -> list[LoginInfo]: ...
    async def cache_user(self, user: SessionUser, *, only_if_absent: bool = False) -> None: ...
    async def forget_user(self, user_id: int) -> None: ...
    async def live_logins(self, login_ids: Collection[str]) -> set[str]:
        """Which of these logins still exist (live sockets re-check theirs, see app/live)."""
        ...

    async def ping(self) -> None: ...
