"""Pending second steps and WebAuthn challenges: in Redis (in memory on the embedded default).

A *pending step* is what a login has between its password (or nothing, for a passkey
login) and the factor that finishes it. Its cookie (`__Secure-mfa`) is random, and the
store keys it by the cookie's SHA-256, as sessions are: Redis never holds a usable one.
It lives STEP_SECONDS, ends after MAX_FAILURES wrong codes, and is ended by the one
verification that succeeds (`finish` answers True once), so two concurrent right codes
cannot make two sessions. It holds the user it is for (none for a passkey login) and
the WebAuthn challenge last issued to it, which `take_webauthn` hands out once.

A WebAuthn challenge for a signed-in user (registering a passkey, re-authenticating with
one) is bound to the session's login instead: `bind` and `take`, single use, the same TTL.

Redis layout (under REDIS_KEY_PREFIX): `mfa:<sha256(cookie)>` hash {uid, fails, wa},
`wac:<purpose>:<login id>` string.
"""

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from app.state import Key

STEP_SECONDS = 300
MAX_FAILURES = 5

# Record a failure; the MAX_FAILURES-th ends the step. Returns failures so far, or -1 if gone.
_FAIL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
if fails >= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) end
return fails
"""
# Hand out the step's WebAuthn challenge once.
_TAKE = """
local value = redis.call('HGET', KEYS[1], 'wa')
if value then redis.call('HDEL', KEYS[1], 'wa') end
return value
"""
# Set the step's WebAuthn challenge, if the step still exists.
_SET = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'wa', ARGV[1])
return 1
"""


@dataclass(frozen=True, slots=True)
class PendingStep:
    user_id: int | None  # None: a passkey login, whose user the passkey will tell
    failures: int
    first: str = "pwd"  # the amr of the factor the login began with (a password, a provider)


class Challenges(Protocol):
    async def open(self, user_id: int | None, first: str = "pwd") -> str:
        """A new pending step after the factor `first` (an amr value); its cookie value."""
        ...

    async def get(self, cookie: str) -> PendingStep | None: ...
    async def fail(self, cookie: str) -> int:
        """Count a wrong code; how many so far (the MAX_FAILURES-th ends the step), -1 if gone."""
        ...

    async def finish(self, cookie: str) -> bool:
        """End the step; True for the one caller that ended it."""
        ...

    async def set_webauthn(self, cookie: str, challenge: str) -> bool: ...
    async def take_webauthn(self, cookie: str) -> str | None: ...
    async def bind(self, purpose: str, login_id: str, challenge: str) -> None: ...
    async def take(self, purpose: str, login_id: str) -> str | None: ...


def new_cookie() -> str:
    return secrets.token_urlsafe(32)


def _hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "surrogateescape")).hexdigest()


class RedisChallenges:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._fail = redis.register_script(_FAIL)
        self._take = redis.register_script(_TAKE)
        self._set = redis.register_script(_SET)

    def _key(self, cookie: str) -> str:
        return f"{self.prefix}mfa:{_hash(cookie)}"

    async def open(self, user_id: int | None, first: str = "pwd") -> str:
        cookie = new_cookie()
        key = self._key(cookie)
        async with self.redis.pipeline(transaction=True) as pipe:
            uid = "" if user_id is None else str(user_id)
            pipe.hset(key, mapping={"uid": uid, "fails": 0, "first": first})
            pipe.expire(key, STEP_SECONDS)
            await pipe.execute()
        return cookie

    async def get(self, cookie: str) -> PendingStep | None:
        uid, fails, first = await self.redis.hmget(self._key(cookie), ["uid", "fails", "first"])  # type: ignore[misc]
        if fails is None:
            return None
        first = first.decode() if isinstance(first, bytes) else first
        return PendingStep(int(uid) if uid else None, int(fails), first or "pwd")

    async def fail(self, cookie: str) -> int:
        return int(await self._fail(keys=[self._key(cookie)], args=[MAX_FAILURES]))

    async def finish(self, cookie: str) -> bool:
        return bool(await self.redis.delete(self._key(cookie)))

    async def set_webauthn(self, cookie: str, challenge: str) -> bool:
        return bool(await self._set(keys=[self._key(cookie)], args=[challenge]))

    async def take_webauthn(self, cookie: str) -> str | None:
        value = await self._take(keys=[self._key(cookie)])
        return value.decode() if isinstance(value, bytes) else value

    async def bind(self, purpose: str, login_id: str, challenge: str) -> None:
        await self.redis.set(f"{self.prefix}wac:{purpose}:{login_id}", challenge, ex=STEP_SECONDS)

    async def take(self, purpose: str, login_id: str) -> str | None:
        value = await self.redis.getdel(f"{self.prefix}wac:{purpose}:{login_id}")
        return value.decode() if isinstance(value, bytes) else value


@dataclass(slots=True)
class _Step:
    user_id: int | None
    expires: float
    failures: int = 0
    webauthn: str | None = None
    first: str = "pwd"


class MemoryChallenges:
    """The embedded default's: the same rules in one process, lost on restart."""

    def __init__(self) -> None:
        self.steps: dict[str, _Step] = {}
        self.bound: dict[str, tuple[str, float]] = {}

    def _step(self, cookie: str) -> _Step | None:
        step = self.steps.get(_hash(cookie))
        if step is not None and step.expires <= time.time():
            self.steps.pop(_hash(cookie), None)
            return None
        return step

    async def open(self, user_id: int | None, first: str = "pwd") -> str:
        now = time.time()
        for key in [key for key, step in self.steps.items() if step.expires <= now]:
            del self.steps[key]
        cookie = new_cookie()
        self.steps[_hash(cookie)] = _Step(user_id, now + STEP_SECONDS, first=first)
        return cookie

    async def get(self, cookie: str) -> PendingStep | None:
        step = self._step(cookie)
        return PendingStep(step.user_id, step.failures, step.first) if step else None

    async def fail(self, cookie: str) -> int:
        step = self._step(cookie)
        if step is None:
            return -1
        step.failures += 1
        if step.failures >= MAX_FAILURES:
            self.steps.pop(_hash(cookie), None)
        return step.failures

    async def finish(self, cookie: str) -> bool:
        return self._step(cookie) is not None and self.steps.pop(_hash(cookie), None) is not None

    async def set_webauthn(self, cookie: str, challenge: str) -> bool:
        step = self._step(cookie)
        if step is None:
            return False
        step.webauthn = challenge
        return True

    async def take_webauthn(self, cookie: str) -> str | None:
        step = self._step(cookie)
        if step is None:
            return None
        value, step.webauthn = step.webauthn, None
        return value

    async def bind(self, purpose: str, login_id: str, challenge: str) -> None:
        self.bound[f"{purpose}:{login_id}"] = (challenge, time.time() + STEP_SECONDS)

    async def take(self, purpose: str, login_id: str) -> str | None:
        value = self.bound.pop(f"{purpose}:{login_id}", None)
        return value[0] if value and value[1] > time.time() else None


def create_challenges(redis: Redis | None, prefix: str) -> Challenges:
    return MemoryChallenges() if redis is None else RedisChallenges(redis, prefix)


CHALLENGES: Key[Challenges] = Key("mfa_challenges")
