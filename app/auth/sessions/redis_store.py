"""The session store in Redis: every change is one Lua script (scripts/), so that
concurrent refreshes of one token cannot both succeed; an authenticated request is one
round trip (app/redis.py AutoPipeline). The key layout is in this package's docstring."""

import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.auth.principal import SessionUser
from app.auth.sessions import lua
from app.auth.sessions.deadline import RedisClock
from app.auth.sessions.types import (
    MAX_LOGINS_PER_USER,
    SEEN_RESOLUTION_SECONDS,
    TOKEN_CACHE_SECONDS,
    TOKEN_USE_RESOLUTION_SECONDS,
    USER_CACHE_SECONDS,
    ActiveSession,
    Assurance,
    CachedToken,
    LoginInfo,
    RefreshLimit,
    RefreshOutcome,
    RefreshResult,
    RefreshTokens,
    TokenRead,
    Tokens,
    TokenState,
    new_login_id,
    new_token,
    timestamp,
    token_hash,
    usable,
)
from app.redis import AutoPipeline

logger = logging.getLogger(__name__)


GuardedCall = Callable[[float], Awaitable[list[Any]]]
REVOKE_BATCH = 100


class RedisSessionStore:
    def __init__(self, redis: Redis, *, prefix: str, refresh_tokens: RefreshTokens) -> None:
        self.redis = redis
        self.prefix = prefix
        self.refresh_tokens = refresh_tokens
        self._read = AutoPipeline(redis, lua.READ)
        self._read_token = AutoPipeline(redis, lua.TOKEN)
        self._create = redis.register_script(lua.CREATE)
        self._refresh = redis.register_script(lua.REFRESH)
        self._end_login = redis.register_script(lua.END_LOGIN)
        self._revoke_login = redis.register_script(lua.REVOKE_LOGIN)
        self._revoke_user = redis.register_script(lua.REVOKE_USER)
        self._assure = redis.register_script(lua.ASSURE)
        self.clock = RedisClock(redis)

    async def _before_deadline(self, call: GuardedCall) -> list[Any]:
        """Runs a guarded script (deadline.py) and returns what it returned after the clock.
        "Late" with its reply in our hands means Redis ran it in the margin before we would
        have given up: it changed nothing, so it is sent once more with a new deadline."""
        for _attempt in range(2):
            seconds, micros, *result = await call(await self.clock.deadline())
            self.clock.observe(seconds, micros)
            if result[0] not in ("late", 0):
                return result
            logger.warning("a session script reached Redis too late to run; sending it once more")
        raise RedisTimeoutError("Redis ran a session script too late twice")

    async def create(
        self,
        user: SessionUser,
        *,
        session_ttl: int,
        refresh_ttl: int,
        user_agent: str,
        ip: str,
        assurance: Assurance,
    ) -> Tokens:
        session, login_id = new_token(), new_login_id()
        args: list[str | int | float] = [
            self.prefix, time.time(), min(session_ttl, refresh_ttl), refresh_ttl, user.id, login_id,
            token_hash(session), user_agent, ip, user.dumps(), USER_CACHE_SECONDS,
        ]  # fmt: skip
        how: list[str | int | float] = [assurance.aal, assurance.encode_amr(), assurance.auth_time]
        _created, ended = await self._before_deadline(
            lambda deadline: self._create(args=[*args, deadline, MAX_LOGINS_PER_USER, *how])
        )
        if ended:
            logger.info(
                "a user's oldest login ended by a new one",
                extra={"event": "login_cap", "actor": user.id, "login": ended},
            )
        refresh = self.refresh_tokens.issue(login_id, 0)
        return Tokens(session, refresh, min(session_ttl, refresh_ttl), refresh_ttl, login_id)

    async def read(self, token: str) -> ActiveSession | None:
        if not usable(token):
            return None
        key = f"{self.prefix}s:{token_hash(token)}"
        row = await self._read(key, time.time(), SEEN_RESOLUTION_SECONDS, self.prefix)
        if not row:
            return None
        uid, login_id, cached, aal, amr, auth_time = json.loads(row)
        how = Assurance(int(aal), Assurance.decode_amr(amr), float(auth_time))
        return ActiveSession(int(uid), login_id, SessionUser.loads(cached) if cached else None, how)

    async def assure(self, user_id: int, login_id: str, assurance: Assurance) -> bool:
        keys = [f"{self.prefix}f:{login_id}"]
        args: list[str | int | float] = [user_id, assurance.aal, assurance.encode_amr(), assurance.auth_time]
        (done,) = await self._before_deadline(
            lambda deadline: self._assure(keys=keys, args=[*args, deadline])
        )
        return int(done) == 1

    async def refresh(
        self, token: str, *, session_ttl: int, grace: int, session: str | None, limit: RefreshLimit
    ) -> RefreshResult:
        named = self.refresh_tokens.read(token)
        if named is None:
            return RefreshResult(RefreshOutcome.INVALID)
        login_id, generation = named
        new_session = new_token()
        keys = [f"{self.prefix}f:{login_id}"]
        args: list[str | int | float] = [
            self.prefix, time.time(), grace, generation, token_hash(new_session), session_ttl,
        ]  # fmt: skip
        tail: list[str | int | float] = [
            token_hash(session) if session and usable(session) else "",
            limit.amount,
            limit.seconds,
        ]
        row = await self._before_deadline(
            lambda deadline: self._refresh(keys=keys, args=[*args, deadline, *tail])
        )
        outcome = RefreshOutcome(row[0])
        user_id = int(row[1]) if len(row) > 1 else None
        if outcome is RefreshOutcome.LIMITED:
            return RefreshResult(outcome, user_id, login_id, retry_after=max(1, int(row[3])))
        if outcome is not RefreshOutcome.ROTATED:
            return RefreshResult(outcome, user_id, login_id if user_id is not None else None)
        refresh = self.refresh_tokens.issue(login_id, int(row[5]))
        tokens = Tokens(new_session, refresh, int(row[3]), int(row[4]), login_id)
        return RefreshResult(outcome, user_id, login_id, tokens)

    async def end_login(self, session: str | None, refresh: str | None) -> tuple[int, str] | None:
        # A token that cannot exist names a key that does not either: one script for every case.
        named = self.refresh_tokens.read(refresh)
        keys = [
            f"{self.prefix}s:{token_hash(session) if session and usable(session) else '-'}",
            f"{self.prefix}f:{named[0] if named else '-'}",
        ]
        ended = await self._end_login(keys=keys, args=[self.prefix, named[1] if named else -1])
        if not ended:
            return None
        user_id, login_id = ended
        return int(user_id), str(login_id)

    async def revoke_login(self, user_id: int, login_id: str) -> bool:
        return bool(
            await self._revoke_login(keys=[f"{self.prefix}uf:{user_id}"], args=[self.prefix, login_id])
        )

    async def revoke_user(self, user_id: int, *, keep: str | None = None) -> int:
        ended, cursor = 0, "0"
        while True:  # a batch per call: no script holds Redis for long, whatever the index holds
            cursor, count = await self._revoke_user(
                keys=[f"{self.prefix}uf:{user_id}"], args=[self.prefix, keep or "", cursor, REVOKE_BATCH]
            )
            ended += int(count)
            if str(cursor) == "0":
                return ended

    async def list_user(self, user_id: int) -> list[LoginInfo]:
        index = f"{self.prefix}uf:{user_id}"
        login_ids: set[str] = await self.redis.smembers(index)  # type: ignore[misc]
        if not login_ids:
            return []
        ordered = sorted(login_ids)
        async with self.redis.pipeline(transaction=False) as pipe:
            for login_id in ordered:
                pipe.hmget(f"{self.prefix}f:{login_id}", ["created", "seen", "ua", "ip", "aal", "amr"])
            rows = await pipe.execute()
        logins, gone = [], []
        for login_id, (created, seen, ua, ip, aal, amr) in zip(ordered, rows, strict=True):
            if created is None:
                gone.append(login_id)
                continue
            logins.append(
                LoginInfo(
                    login_id,
                    user_id,
                    timestamp(created),
                    timestamp(seen),
                    ua or "",
                    ip or "",
                    int(aal or 1),
                    Assurance.decode_amr(amr),
                )  # fmt: skip
            )
        if gone:
            await self.redis.srem(index, *gone)  # type: ignore[misc]
        return sorted(logins, key=lambda login: login.created_at)

    async def cache_user(self, user: SessionUser, *, only_if_absent: bool = False) -> None:
        await self.redis.set(
            f"{self.prefix}u:{user.id}", user.dumps(), ex=USER_CACHE_SECONDS, nx=only_if_absent
        )

    async def live_logins(self, login_ids: Collection[str]) -> set[str]:
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

    async def read_token(self, digest: str) -> TokenRead:
        key = f"{self.prefix}pat:{digest}"
        row = await self._read_token(key, time.time(), TOKEN_USE_RESOLUTION_SECONDS, self.prefix)
        if row in (TokenState.MISS, TokenState.EXPIRED):
            return TokenRead(TokenState(row))
        uid, token_id, scopes, expires, used, generation, touched, cached = json.loads(row)
        token = CachedToken(
            int(token_id), int(uid), tuple(scopes.split()), float(expires), float(used), int(generation)
        )
        user = SessionUser.loads(cached) if cached else None
        return TokenRead(TokenState.HIT, token, user, touched == 1)

    async def token_generation(self, user_id: int) -> int:
        return int(await self.redis.get(f"{self.prefix}patgen:{user_id}") or 0)

    async def cache_token(self, digest: str, token: CachedToken, ttl: int) -> None:
        key = f"{self.prefix}pat:{digest}"
        fields = {
            "uid": token.user_id,
            "id": token.token_id,
            "sc": " ".join(token.scopes),
            "exp": token.expires_at,
            "used": token.last_used_at,
            "gen": token.generation,
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.expire(key, max(1, ttl))
            await pipe.execute()

    async def revoke_tokens(self, user_id: int) -> None:
        # The generation outlives every entry cached before it moved (TOKEN_CACHE_SECONDS),
        # so an old entry can never match a generation that expired back to 0.
        key = f"{self.prefix}patgen:{user_id}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 2 * TOKEN_CACHE_SECONDS)
            await pipe.execute()

    async def ping(self) -> None:
        await self.redis.ping()  # type: ignore[misc]
