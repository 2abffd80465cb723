"""Server-side session records: Redis in deployment, a dict on the embedded default.

Layout in Redis (every key starts with REDIS_KEY_PREFIX):
  s:<sha256(token)>  hash  uid, sid, created, seen, ua, ip     TTL = session lifetime
  us:<user id>       hash  sid -> sha256(token)                the per-user index
  u:<user id>        string  JSON snapshot of the user          the hot-path user cache

Redis never holds a usable token: the cookie's value is only ever hashed. `sid` is
a separate random id, the one shown to users when they list their sessions.

An authenticated request costs one round trip (a Lua script reads the session,
bumps last-seen at most once a minute, and returns the user snapshot); the
snapshot is written through after every committed change of the user (see
app/auth/cache.py), so it never disagrees with PostgreSQL for longer than a commit.
"""

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Protocol

from redis.asyncio import Redis

from app.redis import AutoPipeline

# A cookie longer than this cannot be one we issued; it is refused without a lookup.
MAX_TOKEN_LENGTH = 128
SEEN_RESOLUTION_SECONDS = 60
USER_CACHE_SECONDS = 24 * 3600


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
class SessionInfo:
    id: str
    user_id: int
    created_at: datetime
    last_seen_at: datetime
    user_agent: str
    ip: str


@dataclass(frozen=True, slots=True)
class ActiveSession:
    info: SessionInfo
    user: SessionUser | None  # None: not cached, the caller loads it and caches it


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def _ts(value: str | float) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


class SessionStore(Protocol):
    async def create(
        self, user: SessionUser, *, ttl: int, user_agent: str, ip: str
    ) -> tuple[str, SessionInfo]: ...
    async def read(self, token: str) -> ActiveSession | None: ...
    async def revoke(self, token: str) -> bool: ...
    async def revoke_user(self, user_id: int) -> int: ...
    async def list_user(self, user_id: int) -> list[SessionInfo]: ...
    async def cache_user(self, user: SessionUser, *, only_if_absent: bool = False) -> None: ...
    async def forget_user(self, user_id: int) -> None: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


_READ = """
local s = redis.call('HMGET', KEYS[1], 'uid', 'sid', 'created', 'seen', 'ua', 'ip')
if not s[1] then return false end
if tonumber(ARGV[1]) - tonumber(s[4]) >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'seen', ARGV[1])
  s[4] = ARGV[1]
end
s[7] = redis.call('GET', ARGV[3] .. s[1]) or ''
-- One bulk string rather than a seven-element array: cheaper for the client to parse.
return cjson.encode(s)
"""

_REVOKE = """
local s = redis.call('HMGET', KEYS[1], 'uid', 'sid')
if not s[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HDEL', ARGV[1] .. s[1], s[2])
return 1
"""

_REVOKE_USER = """
local hashes = redis.call('HVALS', KEYS[1])
local n = 0
for _, h in ipairs(hashes) do n = n + redis.call('DEL', ARGV[1] .. h) end
redis.call('DEL', KEYS[1])
return n
"""


class RedisSessionStore:
    def __init__(self, redis: Redis, *, prefix: str, index_ttl: int) -> None:
        self.redis = redis
        self.session_prefix = f"{prefix}s:"
        self.index_prefix = f"{prefix}us:"
        self.user_prefix = f"{prefix}u:"
        self.index_ttl = index_ttl
        self._read = AutoPipeline(redis, _READ)
        self._revoke = redis.register_script(_REVOKE)
        self._revoke_user = redis.register_script(_REVOKE_USER)

    async def create(
        self, user: SessionUser, *, ttl: int, user_agent: str, ip: str
    ) -> tuple[str, SessionInfo]:
        token, sid, now = new_token(), secrets.token_urlsafe(12), time.time()
        key = self.session_prefix + token_hash(token)
        index = f"{self.index_prefix}{user.id}"
        record = {"uid": user.id, "sid": sid, "created": now, "seen": now, "ua": user_agent, "ip": ip}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=record)
            pipe.expire(key, ttl)
            pipe.hset(index, sid, token_hash(token))
            pipe.expire(index, max(ttl, self.index_ttl))
            pipe.set(f"{self.user_prefix}{user.id}", user.dumps(), ex=USER_CACHE_SECONDS)
            await pipe.execute()
        info = SessionInfo(sid, user.id, _ts(now), _ts(now), user_agent, ip)
        return token, info

    async def read(self, token: str) -> ActiveSession | None:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        key = self.session_prefix + token_hash(token)
        row = await self._read(key, time.time(), SEEN_RESOLUTION_SECONDS, self.user_prefix)
        if not row:
            return None
        uid, sid, created, seen, ua, ip, cached = json.loads(row)
        info = SessionInfo(sid, int(uid), _ts(created), _ts(seen), ua or "", ip or "")
        return ActiveSession(info, SessionUser.loads(cached) if cached else None)

    async def revoke(self, token: str) -> bool:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return False
        key = self.session_prefix + token_hash(token)
        return bool(await self._revoke(keys=[key], args=[self.index_prefix]))

    async def revoke_user(self, user_id: int) -> int:
        return int(
            await self._revoke_user(keys=[f"{self.index_prefix}{user_id}"], args=[self.session_prefix])
        )

    async def list_user(self, user_id: int) -> list[SessionInfo]:
        index = f"{self.index_prefix}{user_id}"
        entries: dict[str, str] = await self.redis.hgetall(index)  # type: ignore[misc]
        if not entries:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for digest in entries.values():
                pipe.hmget(self.session_prefix + digest, ["created", "seen", "ua", "ip"])
            rows = await pipe.execute()
        sessions, expired = [], []
        for (sid, _digest), (created, seen, ua, ip) in zip(entries.items(), rows, strict=True):
            if created is None:
                expired.append(sid)
                continue
            sessions.append(SessionInfo(sid, user_id, _ts(created), _ts(seen), ua or "", ip or ""))
        if expired:
            await self.redis.hdel(index, *expired)  # type: ignore[misc]
        return sorted(sessions, key=lambda s: s.created_at)

    async def cache_user(self, user: SessionUser, *, only_if_absent: bool = False) -> None:
        await self.redis.set(
            f"{self.user_prefix}{user.id}", user.dumps(), ex=USER_CACHE_SECONDS, nx=only_if_absent
        )

    async def forget_user(self, user_id: int) -> None:
        await self.redis.delete(f"{self.user_prefix}{user_id}")

    async def ping(self) -> None:
        await self.redis.ping()  # type: ignore[misc]

    async def close(self) -> None:
        await self.redis.aclose()


@dataclass(slots=True)
class _MemorySession:
    info: SessionInfo
    expires: float


class MemorySessionStore:
    """The embedded default's store: one process, lost on restart (development only)."""

    def __init__(self) -> None:
        self.sessions: dict[str, _MemorySession] = {}
        self.index: dict[int, dict[str, str]] = {}
        self.users: dict[int, SessionUser] = {}

    def _live(self, digest: str) -> _MemorySession | None:
        entry = self.sessions.get(digest)
        if entry is not None and entry.expires <= time.time():
            self._drop(digest)
            return None
        return entry

    def _drop(self, digest: str) -> None:
        entry = self.sessions.pop(digest, None)
        if entry is not None:
            self.index.get(entry.info.user_id, {}).pop(entry.info.id, None)

    async def create(
        self, user: SessionUser, *, ttl: int, user_agent: str, ip: str
    ) -> tuple[str, SessionInfo]:
        token, now = new_token(), time.time()
        info = SessionInfo(secrets.token_urlsafe(12), user.id, _ts(now), _ts(now), user_agent, ip)
        digest = token_hash(token)
        self.sessions[digest] = _MemorySession(info, now + ttl)
        self.index.setdefault(user.id, {})[info.id] = digest
        self.users[user.id] = user
        return token, info

    async def read(self, token: str) -> ActiveSession | None:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        digest = token_hash(token)
        entry = self._live(digest)
        if entry is None:
            return None
        now = time.time()
        if now - entry.info.last_seen_at.timestamp() >= SEEN_RESOLUTION_SECONDS:
            info = entry.info
            entry.info = SessionInfo(
                info.id, info.user_id, info.created_at, _ts(now), info.user_agent, info.ip
            )
        return ActiveSession(entry.info, self.users.get(entry.info.user_id))

    async def revoke(self, token: str) -> bool:
        digest = token_hash(token)
        if self._live(digest) is None:
            return False
        self._drop(digest)
        return True

    async def revoke_user(self, user_id: int) -> int:
        digests = list(self.index.pop(user_id, {}).values())
        return sum(self.sessions.pop(d, None) is not None for d in digests)

    async def list_user(self, user_id: int) -> list[SessionInfo]:
        digests = list(self.index.get(user_id, {}).values())
        live = [entry for d in digests if (entry := self._live(d)) is not None]
        return sorted((entry.info for entry in live), key=lambda s: s.created_at)

    async def cache_user(self, user: SessionUser, *, only_if_absent: bool = False) -> None:
        if only_if_absent and user.id in self.users:
            return
        self.users[user.id] = user

    async def forget_user(self, user_id: int) -> None:
        self.users.pop(user_id, None)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
