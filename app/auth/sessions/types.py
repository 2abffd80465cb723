"""What the session store hands out and the interface both stores implement."""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from app.auth.principal import Assurance, SessionUser
from app.keys import derived_key, keyed_digest

# A cookie longer than this cannot be one we issued; it is refused without a lookup.
MAX_TOKEN_LENGTH = 128
SEEN_RESOLUTION_SECONDS = 60
USER_CACHE_SECONDS = 24 * 3600
# Personal access tokens: how long a checked token stays cached (a miss is one query), and
# how often its last use is written through to the database.
TOKEN_CACHE_SECONDS = 3600
TOKEN_USE_RESOLUTION_SECONDS = 60
# A user's logins at most (README "Security"): the next login ends the oldest. Enough for
# every device a person uses; few enough that the sessions list and logout-everywhere
# stay small whatever a script does with one account.
MAX_LOGINS_PER_USER = 50
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
    aal: int = 1
    amr: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ActiveSession:
    user_id: int
    login_id: str
    user: SessionUser | None  # None: not cached, the caller loads it and caches it
    assurance: Assurance


@dataclass(frozen=True, slots=True)
class CachedToken:
    """What checking a personal access token needs (app/auth/tokens), cached in the store
    so that a bearer request costs no database query. `generation` is the user's token
    generation read before the database was: a revocation moves it on, and an entry of an
    older generation is a miss (the row is read again, and is gone)."""

    token_id: int
    user_id: int
    scopes: tuple[str, ...]
    expires_at: float  # Unix time
    last_used_at: float  # Unix time, 0 for never: `touched` is reported once a minute
    generation: int


class TokenState(StrEnum):
    HIT = "hit"
    MISS = "miss"  # not cached, or cached before a revocation: read the database
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class TokenRead:
    outcome: TokenState
    token: CachedToken | None = None
    user: SessionUser | None = None  # None on a hit: not cached, load and cache it
    touched: bool = False  # last use recorded now: write it to the database


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
    MISMATCH = "mismatch"  # the session cookie sent with it belongs to another login
    LIMITED = "limited"  # this login rotated too often in the window: try later
    INVALID = "invalid"  # unknown, expired, revoked or forged


@dataclass(frozen=True, slots=True)
class RefreshResult:
    outcome: RefreshOutcome
    user_id: int | None = None
    login_id: str | None = None
    tokens: Tokens | None = field(default=None)
    retry_after: int | None = None  # LIMITED: seconds until the window frees a rotation


@dataclass(frozen=True, slots=True)
class RefreshLimit:
    """How many rotations one login may make per window (REFRESH_RATE_LIMIT)."""

    amount: int
    seconds: int


class RefreshTokens:
    """A refresh token is `<login id>.<generation>.<MAC>`: it names its login and how many
    rotations preceded it, and the MAC (keyed from SECRET_KEY) shows that we issued it.
    So the login's record needs only its current generation for reuse detection (RFC 9700
    4.14.2): any earlier generation is a token already rotated, however old, and nothing
    is kept per rotation. Redis holds no usable token: the MAC key is not there."""

    def __init__(self, secret_key: str) -> None:
        self.key = derived_key(secret_key, "refresh-token")

    def _mac(self, login_id: str, generation: int) -> str:
        digest = keyed_digest(self.key, f"{login_id}.{generation}")
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, login_id: str, generation: int) -> str:
        return f"{login_id}.{generation}.{self._mac(login_id, generation)}"

    def read(self, token: str | None) -> tuple[str, int] | None:
        """(login id, generation) of a token we issued, else None."""
        if not usable(token):
            return None
        login_id, _, rest = str(token).partition(".")
        generation, _, mac = rest.partition(".")
        if not (login_id and generation.isdigit() and len(generation) <= 9 and mac):
            return None
        if not hmac.compare_digest(mac.encode(), self._mac(login_id, int(generation)).encode()):
            return None
        return login_id, int(generation)


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
        self,
        user: SessionUser,
        *,
        session_ttl: int,
        refresh_ttl: int,
        user_agent: str,
        ip: str,
        assurance: Assurance,
    ) -> Tokens: ...
    async def assure(self, user_id: int, login_id: str, assurance: Assurance) -> bool:
        """Record a re-authentication or a step up on a live login of `user_id`; False when
        the login is gone (or another user's)."""
        ...

    async def read(self, token: str) -> ActiveSession | None: ...
    async def refresh(
        self, token: str, *, session_ttl: int, grace: int, session: str | None, limit: RefreshLimit
    ) -> RefreshResult:
        """Rotate the login of `token`; `session` is the session cookie sent with it, which
        must not belong to another login."""
        ...

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

    # Personal access tokens (app/auth/tokens): `digest` is the token's SHA-256.
    async def read_token(self, digest: str) -> TokenRead: ...
    async def token_generation(self, user_id: int) -> int: ...
    async def cache_token(self, digest: str, token: CachedToken, ttl: int) -> None: ...
    async def revoke_tokens(self, user_id: int) -> None:
        """Every cached token of the user becomes a miss (the next request reads the database)."""
        ...

    async def ping(self) -> None: ...
