"""Server-side sessions: Redis in deployment, a dict on the embedded default.

A *login* (what users see as "a session" and can list and revoke) starts when a
password is typed and lasts at most REFRESH_TOKEN_EXPIRE_DAYS. It owns exactly one
live session token (the cookie every request carries, ACCESS_TOKEN_EXPIRE_MINUTES)
and one live refresh token. Refreshing rotates both; the rotated refresh token is
kept, marked, until the login's end, so that presenting it again is recognised as
reuse (RFC 9700 4.14.2): within REFRESH_REUSE_GRACE_SECONDS it is a second tab and
changes nothing; later it revokes the whole login, and no other login of the user.

Layout in Redis (every key starts with REDIS_KEY_PREFIX):
  s:<sha256(session token)>  hash  uid, fam                  TTL = session lifetime
  r:<sha256(refresh token)>  hash  uid, fam, rot (rotated at) TTL = rest of the login
  f:<login id>               hash  uid, created, seen, ua, ip, exp, s, r   (the login)
  uf:<user id>               set   login ids of the user (revoke all, list)
  u:<user id>                string JSON snapshot of the user (the hot-path cache)

Redis never holds a usable token: cookies are only ever hashed. The login id is a
separate random value, the one shown to users. Every change is one Lua script, so
concurrent refreshes of one token cannot both succeed. The scripts build key names
from the prefix, so they assume one Redis server (not Cluster).

An authenticated request costs one round trip (app/redis.py AutoPipeline): the read
script checks the session and its login, bumps last-seen at most once a minute and
returns the user snapshot, which app/auth/cache.py keeps true after every commit.

Live sockets (app/live) belong to a login. Every script that ends logins publishes
their ids on `<prefix>live:revoked` in the same atomic step, whichever process ran
it (a worker, the command line), so that every worker closes their sockets; the
memory store calls its `login_listeners` instead. Rotation ends no login.
"""

import hashlib
import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from redis.asyncio import Redis

from app.redis import AutoPipeline

# A cookie longer than this cannot be one we issued; it is refused without a lookup.
logger = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 128
SEEN_RESOLUTION_SECONDS = 60
USER_CACHE_SECONDS = 24 * 3600
# A login or a refresh that reaches Redis this long after it was sent is dropped: its
# caller has answered 503 by then (API.md: within 5 s), so running it would only make
# tokens nobody holds: a login no one can use, or a rotation that leaves the browser's
# refresh token "already rotated", a logout the user never asked for. Happens when
# commands wait in the socket buffer of a paused or overloaded Redis. The deadline is
# read on Redis's clock; an answer "late" that reaches us anyway can only mean that clock
# runs ahead of ours (we were still waiting), so the call is made again without one.
LATE_AFTER_SECONDS = 5
# Live updates (app/live): the channel, under the key prefix, naming the logins a script ended.
REVOKED_CHANNEL = "live:revoked"


@dataclass(frozen=True, slots=True)
class SessionUser:
    """What a request needs to know about its user, served from the session store."""

    id: int
    email: str
    username: str
    is_active: bool
    is_superuser: bool
    is_verified: bool
    created_at: datetime

    def dumps(self) -> str:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str) -> "SessionUser":
        data = json.loads(raw)
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        return cls(**data)


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


def _usable(token: str | None) -> bool:
    return bool(token) and len(token or "") <= MAX_TOKEN_LENGTH


def _ts(value: str | float) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


class SessionStore(Protocol):
    async def create(
        self, user: SessionUser, *, session_ttl: int, refresh_ttl: int, user_agent: str, ip: str
    ) -> Tokens: ...
    async def read(self, token: str) -> ActiveSession | None: ...
    async def refresh(self, token: str, *, session_ttl: int, grace: int) -> RefreshResult: ...
    async def revoke(self, token: str) -> bool: ...
    async def end_login(self, session: str | None, refresh: str | None) -> tuple[int, str] | None: ...
    async def revoke_login(self, user_id: int, login_id: str) -> bool: ...
    async def revoke_user(self, user_id: int, *, keep: str | None = None) -> int: ...
    async def list_user(self, user_id: int) -> list[LoginInfo]: ...
    async def cache_user(self, user: SessionUser, *, only_if_absent: bool = False) -> None: ...
    async def live_logins(self, login_ids: Collection[str]) -> set[str]: ...
    async def forget_user(self, user_id: int) -> None: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


# Shared by the scripts below: end one login, its live tokens and its index entry;
# `announce` then names every login ended, in one message (live sockets, see above).
_DROP = """
local dropped = {}
local function drop(p, fam)
  local fk = p .. 'f:' .. fam
  local f = redis.call('HMGET', fk, 'uid', 's', 'r')
  if not f[1] then return 0 end
  if f[2] then redis.call('DEL', p .. 's:' .. f[2]) end
  if f[3] then redis.call('DEL', p .. 'r:' .. f[3]) end
  redis.call('DEL', fk)
  redis.call('SREM', p .. 'uf:' .. f[1], fam)
  dropped[#dropped + 1] = fam
  return 1
end
local function announce(p)
  if #dropped > 0 then
    redis.call('PUBLISH', p .. '@REVOKED_CHANNEL@', table.concat(dropped, ' '))
  end
end
""".replace("@REVOKED_CHANNEL@", REVOKED_CHANNEL)

_READ = """
local s = redis.call('HMGET', KEYS[1], 'uid', 'fam')
if not s[1] then return false end
local fk = ARGV[3] .. 'f:' .. s[2]
local seen = redis.call('HGET', fk, 'seen')
if not seen then return false end
if tonumber(ARGV[1]) - tonumber(seen) >= tonumber(ARGV[2]) then
  redis.call('HSET', fk, 'seen', ARGV[1])
end
local u = redis.call('GET', ARGV[3] .. 'u:' .. s[1]) or ''
-- One bulk string rather than an array: cheaper for the client to parse.
return cjson.encode({s[1], s[2], u})
"""

_LATE = """
local function late(deadline)
  if tonumber(deadline) == 0 then return false end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000 > tonumber(deadline)
end
"""

_CREATE = (
    _LATE
    + """
local p, now = ARGV[1], ARGV[2]
local sttl, rttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local uid, fam, sh, rh = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
if late(ARGV[13]) then return 0 end
local sk, rk, fk, idx = p .. 's:' .. sh, p .. 'r:' .. rh, p .. 'f:' .. fam, p .. 'uf:' .. uid
redis.call('HSET', sk, 'uid', uid, 'fam', fam)
redis.call('EXPIRE', sk, sttl)
redis.call('HSET', rk, 'uid', uid, 'fam', fam, 'rot', '')
redis.call('EXPIRE', rk, rttl)
redis.call('HSET', fk, 'uid', uid, 'created', now, 'seen', now, 'ua', ARGV[9], 'ip', ARGV[10],
  'exp', tonumber(now) + rttl, 's', sh, 'r', rh)
redis.call('EXPIRE', fk, rttl)
redis.call('SADD', idx, fam)
if redis.call('TTL', idx) < rttl then redis.call('EXPIRE', idx, rttl) end
redis.call('SET', p .. 'u:' .. uid, ARGV[11], 'EX', ARGV[12])
return 1
"""
)

_REFRESH = (
    _DROP
    + _LATE
    + """
local p, now, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if late(ARGV[7]) then return {'late'} end
local r = redis.call('HMGET', KEYS[1], 'uid', 'fam', 'rot')
if not r[1] then return {'invalid'} end
if r[3] ~= '' then
  if now - tonumber(r[3]) <= grace then return {'grace', r[1], r[2]} end
  drop(p, r[2])
  announce(p)
  return {'reused', r[1], r[2]}
end
local fk = p .. 'f:' .. r[2]
local f = redis.call('HMGET', fk, 's', 'exp')
if not f[2] then return {'invalid', r[1], r[2]} end
local left = math.floor(tonumber(f[2]) - now)
if left <= 0 then
  drop(p, r[2])
  announce(p)
  return {'invalid', r[1], r[2]}
end
-- Kept, marked as rotated, until the login ends: a later replay is then recognised.
redis.call('HSET', KEYS[1], 'rot', ARGV[2])
if f[1] then redis.call('DEL', p .. 's:' .. f[1]) end
local sttl = math.min(tonumber(ARGV[6]), left)
local sk, rk = p .. 's:' .. ARGV[4], p .. 'r:' .. ARGV[5]
redis.call('HSET', sk, 'uid', r[1], 'fam', r[2])
redis.call('EXPIRE', sk, sttl)
redis.call('HSET', rk, 'uid', r[1], 'fam', r[2], 'rot', '')
redis.call('EXPIRE', rk, left)
redis.call('HSET', fk, 's', ARGV[4], 'r', ARGV[5], 'seen', ARGV[2])
return {'rotated', r[1], r[2], sttl, left}
"""
)

_REVOKE_SESSION = (
    _DROP
    + """
local fam = redis.call('HGET', KEYS[1], 'fam')
if not fam then return 0 end
redis.call('DEL', KEYS[1])
local n = drop(ARGV[1], fam)
announce(ARGV[1])
return n
"""
)

# Logout: the login of the session cookie and that of the refresh cookie (the same one,
# unless the browser holds a stale pair), in one round trip. Returns the user and login
# ended first, for the audit trail, or nothing when neither was alive.
_END_LOGIN = (
    _DROP
    + """
local p, who = ARGV[1], false
local s = redis.call('HMGET', KEYS[1], 'uid', 'fam')
if s[2] then
  redis.call('DEL', KEYS[1])
  if drop(p, s[2]) == 1 then who = {s[1], s[2]} end
end
local r = redis.call('HMGET', KEYS[2], 'uid', 'fam', 'rot')
if r[2] and r[3] == '' and drop(p, r[2]) == 1 and not who then who = {r[1], r[2]} end
announce(p)
return who
"""
)

_REVOKE_LOGIN = (
    _DROP
    + """
if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 0 then return 0 end
local n = drop(ARGV[1], ARGV[2])
announce(ARGV[1])
return n
"""
)

_REVOKE_USER = (
    _DROP
    + """
local n = 0
for _, fam in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if fam ~= ARGV[2] then n = n + drop(ARGV[1], fam) end
end
announce(ARGV[1])
return n
"""
)


def _clock_ahead() -> None:
    logger.warning(
        "Redis's clock runs over %s s ahead of this host's: a login or refresh was taken for late; "
        "check NTP on both",
        LATE_AFTER_SECONDS,
    )


class RedisSessionStore:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._read = AutoPipeline(redis, _READ)
        self._create = redis.register_script(_CREATE)
        self._refresh = redis.register_script(_REFRESH)
        self._revoke_session = redis.register_script(_REVOKE_SESSION)
        self._end_login = redis.register_script(_END_LOGIN)
        self._revoke_login = redis.register_script(_REVOKE_LOGIN)
        self._revoke_user = redis.register_script(_REVOKE_USER)

    async def create(
        self, user: SessionUser, *, session_ttl: int, refresh_ttl: int, user_agent: str, ip: str
    ) -> Tokens:
        session, refresh, login_id = new_token(), new_token(), new_login_id()
        now = time.time()
        args: list[str | int | float] = [
            self.prefix, now, min(session_ttl, refresh_ttl), refresh_ttl, user.id, login_id,
            token_hash(session), token_hash(refresh), user_agent, ip, user.dumps(), USER_CACHE_SECONDS,
        ]  # fmt: skip
        if not await self._create(args=[*args, now + LATE_AFTER_SECONDS]):
            _clock_ahead()
            await self._create(args=[*args, 0])
        return Tokens(session, refresh, min(session_ttl, refresh_ttl), refresh_ttl, login_id)

    async def read(self, token: str) -> ActiveSession | None:
        if not _usable(token):
            return None
        key = f"{self.prefix}s:{token_hash(token)}"
        row = await self._read(key, time.time(), SEEN_RESOLUTION_SECONDS, self.prefix)
        if not row:
            return None
        uid, login_id, cached = json.loads(row)
        return ActiveSession(int(uid), login_id, SessionUser.loads(cached) if cached else None)

    async def refresh(self, token: str, *, session_ttl: int, grace: int) -> RefreshResult:
        if not _usable(token):
            return RefreshResult(RefreshOutcome.INVALID)
        session, refresh = new_token(), new_token()
        now = time.time()
        keys = [f"{self.prefix}r:{token_hash(token)}"]
        args: list[str | int | float] = [
            self.prefix,
            now,
            grace,
            token_hash(session),
            token_hash(refresh),
            session_ttl,
        ]
        row = await self._refresh(keys=keys, args=[*args, now + LATE_AFTER_SECONDS])
        if row[0] == "late":
            _clock_ahead()
            row = await self._refresh(keys=keys, args=[*args, 0])
        outcome = RefreshOutcome(row[0])
        user_id = int(row[1]) if len(row) > 1 else None
        login_id = row[2] if len(row) > 2 else None
        if outcome is not RefreshOutcome.ROTATED:
            return RefreshResult(outcome, user_id, login_id)
        tokens = Tokens(session, refresh, int(row[3]), int(row[4]), str(login_id))
        return RefreshResult(outcome, user_id, login_id, tokens)

    async def revoke(self, token: str) -> bool:
        if not _usable(token):
            return False
        return bool(
            await self._revoke_session(keys=[f"{self.prefix}s:{token_hash(token)}"], args=[self.prefix])
        )

    async def end_login(self, session: str | None, refresh: str | None) -> tuple[int, str] | None:
        # A token that cannot exist names a key that does not either: one script for every case.
        keys = [
            f"{self.prefix}s:{token_hash(session) if session and _usable(session) else '-'}",
            f"{self.prefix}r:{token_hash(refresh) if refresh and _usable(refresh) else '-'}",
        ]
        ended = await self._end_login(keys=keys, args=[self.prefix])
        if not ended:
            return None
        user_id, login_id = ended
        return int(user_id), str(login_id)

    async def revoke_login(self, user_id: int, login_id: str) -> bool:
        return bool(
            await self._revoke_login(keys=[f"{self.prefix}uf:{user_id}"], args=[self.prefix, login_id])
        )

    async def revoke_user(self, user_id: int, *, keep: str | None = None) -> int:
        return int(
            await self._revoke_user(keys=[f"{self.prefix}uf:{user_id}"], args=[self.prefix, keep or ""])
        )

    async def list_user(self, user_id: int) -> list[LoginInfo]:
        index = f"{self.prefix}uf:{user_id}"
        login_ids: set[str] = await self.redis.smembers(index)  # type: ignore[misc]
        if not login_ids:
            return []
        ordered = sorted(login_ids)
        async with self.redis.pipeline(transaction=False) as pipe:
            for login_id in ordered:
                pipe.hmget(f"{self.prefix}f:{login_id}", ["created", "seen", "ua", "ip"])
            rows = await pipe.execute()
        logins, gone = [], []
        for login_id, (created, seen, ua, ip) in zip(ordered, rows, strict=True):
            if created is None:
                gone.append(login_id)
                continue
            logins.append(LoginInfo(login_id, user_id, _ts(created), _ts(seen), ua or "", ip or ""))
        if gone:
            await self.redis.srem(index, *gone)  # type: ignore[misc]
        return sorted(logins, key=lambda login: login.created_at)

    async def cache_user(self, user: SessionUser, *, only_if_absent: bool = False) -> None:
        await self.redis.set(
            f"{self.prefix}u:{user.id}", user.dumps(), ex=USER_CACHE_SECONDS, nx=only_if_absent
        )

    async def live_logins(self, login_ids: Collection[str]) -> set[str]:
        """Which of these logins still exist (live sockets re-check theirs, see app/live)."""
        ordered = list(login_ids)
        if not ordered:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for login_id in ordered:
                pipe.exists(f"{self.prefix}f:{login_id}")
            found = await pipe.execute()
        return {login_id for login_id, exists in zip(ordered, found, strict=True) if exists}

    async def forget_user(self, user_id: int) -> None:
        await self.redis.delete(f"{self.prefix}u:{user_id}")

    async def ping(self) -> None:
        await self.redis.ping()  # type: ignore[misc]

    async def close(self) -> None:
        await self.redis.aclose()


@dataclass(slots=True)
class _Login:
    info: LoginInfo
    expires: float
    session: str  # token hashes
    refresh: str


class MemorySessionStore:
    """The embedded default's store: the same rules in one process, lost on restart."""

    def __init__(self) -> None:
        self.sessions: dict[str, tuple[str, float]] = {}  # hash -> (login id, expires)
        self.refreshes: dict[str, tuple[str, float, float | None]] = {}  # hash -> (login, expires, rotated)
        self.logins: dict[str, _Login] = {}
        self.users: dict[int, SessionUser] = {}
        # Live updates (app/live): told the ids of logins as they end, as the scripts publish them.
        self.login_listeners: list[Callable[[list[str]], None]] = []

    def _login(self, login_id: str) -> _Login | None:
        login = self.logins.get(login_id)
        if login is not None and login.expires <= time.time():
            self._drop(login_id)
            return None
        return login

    def _drop(self, login_id: str) -> bool:
        login = self.logins.pop(login_id, None)
        if login is None:
            return False
        self.sessions.pop(login.session, None)
        self.refreshes.pop(login.refresh, None)
        for listener in self.login_listeners:
            listener([login_id])
        return True

    def _issue(self, login: _Login, session_ttl: int) -> Tokens:
        now = time.time()
        session, refresh = new_token(), new_token()
        login.session, login.refresh = token_hash(session), token_hash(refresh)
        ttl = min(session_ttl, math.floor(login.expires - now))
        self.sessions[login.session] = (login.info.id, now + ttl)
        self.refreshes[login.refresh] = (login.info.id, login.expires, None)
        return Tokens(session, refresh, ttl, math.floor(login.expires - now), login.info.id)

    async def create(
        self, user: SessionUser, *, session_ttl: int, refresh_ttl: int, user_agent: str, ip: str
    ) -> Tokens:
        now = time.time()
        info = LoginInfo(new_login_id(), user.id, _ts(now), _ts(now), user_agent, ip)
        login = _Login(info, now + refresh_ttl, "", "")
        self.logins[info.id] = login
        self.users[user.id] = user
        return self._issue(login, session_ttl)

    async def read(self, token: str) -> ActiveSession | None:
        if not _usable(token):
            return None
        entry = self.sessions.get(token_hash(token))
        now = time.time()
        if entry is None or entry[1] <= now:
            return None
        login = self._login(entry[0])
        if login is None:
            return None
        info = login.info
        if now - info.last_seen_at.timestamp() >= SEEN_RESOLUTION_SECONDS:
            login.info = LoginInfo(info.id, info.user_id, info.created_at, _ts(now), info.user_agent, info.ip)
        return ActiveSession(info.user_id, info.id, self.users.get(info.user_id))

    async def refresh(self, token: str, *, session_ttl: int, grace: int) -> RefreshResult:
        digest = token_hash(token) if _usable(token) else ""
        entry = self.refreshes.get(digest)
        now = time.time()
        if entry is None or entry[1] <= now:
            return RefreshResult(RefreshOutcome.INVALID)
        login_id, _expires, rotated = entry
        login = self.logins.get(login_id)
        user_id = login.info.user_id if login else None
        if rotated is not None:
            if now - rotated <= grace:
                return RefreshResult(RefreshOutcome.GRACE, user_id, login_id)
            self._drop(login_id)
            return RefreshResult(RefreshOutcome.REUSED, user_id, login_id)
        login = self._login(login_id)
        if login is None:
            return RefreshResult(RefreshOutcome.INVALID, user_id, login_id)
        self.refreshes[digest] = (login_id, login.expires, now)
        self.sessions.pop(login.session, None)
        tokens = self._issue(login, session_ttl)
        login.info = LoginInfo(
            login.info.id,
            login.info.user_id,
            login.info.created_at,
            _ts(now),
            login.info.user_agent,
            login.info.ip,
        )
        return RefreshResult(RefreshOutcome.ROTATED, login.info.user_id, login_id, tokens)

    async def revoke(self, token: str) -> bool:
        entry = self.sessions.get(token_hash(token)) if _usable(token) else None
        return entry is not None and self._drop(entry[0])

    async def end_login(self, session: str | None, refresh: str | None) -> tuple[int, str] | None:
        ended = []
        entry = self.sessions.get(token_hash(session)) if session and _usable(session) else None
        if entry is not None:
            ended.append(self._end(entry[0]))
        entry_r = self.refreshes.get(token_hash(refresh)) if refresh and _usable(refresh) else None
        if entry_r is not None and entry_r[2] is None:
            ended.append(self._end(entry_r[0]))
        return next((who for who in ended if who is not None), None)

    def _end(self, login_id: str) -> tuple[int, str] | None:
        login = self.logins.get(login_id)
        return (login.info.user_id, login_id) if login is not None and self._drop(login_id) else None

    async def revoke_login(self, user_id: int, login_id: str) -> bool:
        login = self.logins.get(login_id)
        return login is not None and login.info.user_id == user_id and self._drop(login_id)

    async def revoke_user(self, user_id: int, *, keep: str | None = None) -> int:
        mine = [lid for lid, login in self.logins.items() if login.info.user_id == user_id and lid != keep]
        return sum(self._drop(login_id) for login_id in mine)

    async def list_user(self, user_id: int) -> list[LoginInfo]:
        mine = [lid for lid, login in list(self.logins.items()) if login.info.user_id == user_id]
        live = [login for lid in mine if (login := self._login(lid)) is not None]
        return sorted((login.info for login in live), key=lambda info: info.created_at)

    async def cache_user(self, user: SessionUser, *, only_if_absent: bool = False) -> None:
        if only_if_absent and user.id in self.users:
            return
        self.users[user.id] = user

    async def live_logins(self, login_ids: Collection[str]) -> set[str]:
        return {login_id for login_id in login_ids if self._login(login_id) is not None}

    async def forget_user(self, user_id: int) -> None:
        self.users.pop(user_id, None)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
