"""The embedded default's store: the same rules as Redis's scripts, in one process, lost on restart."""

import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from app.auth.principal import SessionUser
from app.auth.sessions.types import (
    MAX_LOGINS_PER_USER,
    SEEN_RESOLUTION_SECONDS,
    TOKEN_USE_RESOLUTION_SECONDS,
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

LoginsEnded = Callable[[list[str]], object]


@dataclass(slots=True)
class _Login:
    info: LoginInfo
    expires: float
    session: str  # the live session token's hash
    assurance: Assurance
    generation: int = 0  # of the refresh token it would rotate
    rotated_at: float = 0.0
    rotations: int = 0  # in the window that began at window_start
    window_start: float = 0.0


class MemorySessionStore:
    def __init__(self, refresh_tokens: RefreshTokens, on_logins_ended: LoginsEnded | None = None) -> None:
        self.refresh_tokens = refresh_tokens
        self.sessions: dict[str, tuple[str, float]] = {}  # hash -> (login id, expires)
        self.logins: dict[str, _Login] = {}
        self.users: dict[int, SessionUser] = {}
        self.access_tokens: dict[str, tuple[CachedToken, float]] = {}  # digest -> (token, until)
        self.token_generations: dict[int, int] = {}
        # Told the ids of logins as they end, as the Redis scripts publish them: there is
        # no Redis to publish on, so the live sockets of this process hear it from here.
        self.on_logins_ended = on_logins_ended

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
        if self.on_logins_ended is not None:
            self.on_logins_ended([login_id])
        return True

    def _issue(self, login: _Login, session_ttl: int, now: float) -> Tokens:
        session = new_token()
        login.session = token_hash(session)
        ttl = min(session_ttl, math.floor(login.expires - now))
        self.sessions[login.session] = (login.info.id, now + ttl)
        refresh = self.refresh_tokens.issue(login.info.id, login.generation)
        return Tokens(session, refresh, ttl, math.floor(login.expires - now), login.info.id)

    def _seen(self, login: _Login, now: float) -> None:
        login.info = replace(login.info, last_seen_at=timestamp(now))

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
        now = time.time()
        mine = [login for login in self.logins.values() if login.info.user_id == user.id]
        if len(mine) >= MAX_LOGINS_PER_USER:
            self._drop(min(mine, key=lambda login: login.info.created_at).info.id)
        info = LoginInfo(
            new_login_id(), user.id, timestamp(now), timestamp(now), user_agent, ip,
            assurance.aal, assurance.amr,
        )  # fmt: skip
        login = _Login(info, now + refresh_ttl, "", assurance)
        self.logins[info.id] = login
        self.users[user.id] = user
        return self._issue(login, session_ttl, now)

    async def read(self, token: str) -> ActiveSession | None:
        if not usable(token):
            return None
        entry = self.sessions.get(token_hash(token))
        now = time.time()
        if entry is None or entry[1] <= now:
            return None
        login = self._login(entry[0])
        if login is None:
            return None
        if now - login.info.last_seen_at.timestamp() >= SEEN_RESOLUTION_SECONDS:
            self._seen(login, now)
        user = self.users.get(login.info.user_id)
        return ActiveSession(login.info.user_id, login.info.id, user, login.assurance)

    async def assure(self, user_id: int, login_id: str, assurance: Assurance) -> bool:
        login = self._login(login_id)
        if login is None or login.info.user_id != user_id:
            return False
        login.assurance = assurance
        login.info = replace(login.info, aal=assurance.aal, amr=assurance.amr)  # what the list shows
        return True

    async def refresh(
        self, token: str, *, session_ttl: int, grace: int, session: str | None, limit: RefreshLimit
    ) -> RefreshResult:
        named = self.refresh_tokens.read(token)
        login = self.logins.get(named[0]) if named else None
        if named is None or login is None:
            return RefreshResult(RefreshOutcome.INVALID)
        login_id, generation = named
        user_id, now = login.info.user_id, time.time()
        if generation > login.generation:
            return RefreshResult(RefreshOutcome.INVALID, user_id, login_id)
        if generation < login.generation:
            if generation == login.generation - 1 and now - login.rotated_at <= grace:
                return RefreshResult(RefreshOutcome.GRACE, user_id, login_id)
            self._drop(login_id)
            return RefreshResult(RefreshOutcome.REUSED, user_id, login_id)
        other = self.sessions.get(token_hash(session)) if session and usable(session) else None
        if other is not None and other[0] != login_id:
            return RefreshResult(RefreshOutcome.MISMATCH, user_id, login_id)
        if self._login(login_id) is None:
            return RefreshResult(RefreshOutcome.INVALID, user_id, login_id)
        if now - login.window_start >= limit.seconds:
            login.rotations, login.window_start = 0, now
        if login.rotations >= limit.amount:
            retry = max(1, math.ceil(login.window_start + limit.seconds - now))
            return RefreshResult(RefreshOutcome.LIMITED, user_id, login_id, retry_after=retry)
        self.sessions.pop(login.session, None)
        login.generation += 1
        login.rotated_at = now
        login.rotations += 1
        self._seen(login, now)
        return RefreshResult(RefreshOutcome.ROTATED, user_id, login_id, self._issue(login, session_ttl, now))

    async def end_login(self, session: str | None, refresh: str | None) -> tuple[int, str] | None:
        ended = []
        entry = self.sessions.get(token_hash(session)) if session and usable(session) else None
        if entry is not None:
            ended.append(self._end(entry[0]))
        named = self.refresh_tokens.read(refresh)
        login = self.logins.get(named[0]) if named else None
        if named is not None and login is not None and login.generation == named[1]:
            ended.append(self._end(named[0]))
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

    async def read_token(self, digest: str) -> TokenRead:
        now = time.time()
        cached, until = self.access_tokens.get(digest, (None, 0.0))
        if (
            cached is None
            or until <= now
            or cached.generation != self.token_generations.get(cached.user_id, 0)
        ):
            return TokenRead(TokenState.MISS)
        if now >= cached.expires_at:
            return TokenRead(TokenState.EXPIRED)
        touched = now - cached.last_used_at >= TOKEN_USE_RESOLUTION_SECONDS
        if touched:
            cached = replace(cached, last_used_at=now)
            self.access_tokens[digest] = (cached, until)
        return TokenRead(TokenState.HIT, cached, self.users.get(cached.user_id), touched)

    async def token_generation(self, user_id: int) -> int:
        return self.token_generations.get(user_id, 0)

    async def cache_token(self, digest: str, token: CachedToken, ttl: int) -> None:
        self.access_tokens[digest] = (token, time.time() + ttl)

    async def revoke_tokens(self, user_id: int) -> None:
        self.token_generations[user_id] = self.token_generations.get(user_id, 0) + 1
        for digest, (token, _until) in list(self.access_tokens.items()):
            if token.user_id == user_id:
                del self.access_tokens[digest]

    async def ping(self) -> None:
        return None
