"""The session flows of API.md section 3: login, refresh, logout, logout everywhere.

Each flow decides what happens and in which order (rate limits before the password is
checked, the old login ended before the new one starts, the audit record and the login
metric from the one outcome); the router parses the request and turns what a flow
returns into the response. fastapi-users' backend (backend.py) makes and ends the login
behind the session cookie. Nothing here commits: the request's session does.
"""

import hashlib
import hmac
from dataclasses import dataclass
from logging import INFO, WARNING
from typing import Any

from fastapi import Response
from fastapi_users.authentication import AuthenticationBackend
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.audit import audit
from app.auth import repository
from app.auth.account import devices
from app.auth.account import tokens as account_tokens
from app.auth.account.devices import DeviceCookies
from app.auth.backend import SessionStrategy, as_library_strategy
from app.auth.csrf import CsrfSigner
from app.auth.mfa.challenges import STEP_SECONDS, Challenges
from app.auth.notices import enqueue_notice, mail_link
from app.auth.passwords import dummy_hash, verify_password
from app.auth.principal import Assurance, Principal, has_second_factor
from app.auth.ratelimit import RateLimits
from app.auth.sessions.types import RefreshOutcome, SessionStore, Tokens
from app.config import Settings
from app.db import get_row, transaction
from app.errors import AppError, ErrorCode
from app.metrics import Metrics
from app.models import User
from app.security_log import SecurityEvent, record_event, record_event_soon


@dataclass(frozen=True, slots=True)
class Auth:
    """What the flows need, for one request (built by the `AuthDep` dependency)."""

    request: HTTPConnection  # who is asking: the audit trail's ip and request id
    settings: Settings
    store: SessionStore
    csrf: CsrfSigner
    limits: RateLimits
    backend: AuthenticationBackend[User, int]
    metrics: Metrics
    sessionmaker: async_sessionmaker[AsyncSession]
    challenges: Challenges
    devices: DeviceCookies


@dataclass(frozen=True, slots=True)
class NewSession:
    """A login's or a refresh's outcome, for the browser: the library's response carrying
    the session cookie, the tokens, and the CSRF token bound to the new session."""

    carrier: Response
    tokens: Tokens
    csrf_token: str
    device: str | None = None  # a device cookie to set: minted at this login (API.md section 3)


@dataclass(frozen=True, slots=True)
class SecondStep:
    """A right password for a user with a second factor: no session yet, a pending step
    (its cookie) that `/auth/mfa/verify` finishes (API.md section 9)."""

    cookie: str
    methods: list[str]
    expires_in: int = STEP_SECONDS


class RefreshRefused(AppError):
    """401 `invalid_refresh_token`; `clear_cookies` false for a concurrent tab's replay,
    whose browser holds the new pair by now."""

    def __init__(self, *, clear_cookies: bool) -> None:
        super().__init__(ErrorCode.INVALID_REFRESH_TOKEN)
        self.clear_cookies = clear_cookies


def _login_outcome(auth: Auth, outcome: str, **fields: Any) -> None:
    """One audit record and one count per login attempt, from the same outcome."""
    audit(auth.request, "login", outcome, **fields)
    auth.metrics.login(outcome)


def _security_event(auth: Auth, user_id: int, event: SecurityEvent, **details: Any) -> None:
    """The user's security log: these events change nothing in the database, so the row
    is written in the background, without delaying the answer."""
    record_event_soon(auth.sessionmaker, auth.request, user_id, event, details)


def _subject(key: str, identifier: str) -> str:
    # Which account was tried, without writing the submitted name into the log (it may
    # be a password typed in the wrong field): a keyed hash, stable per name.
    return hmac.new(key.encode(), identifier.casefold().encode(), hashlib.sha256).hexdigest()[:16]


async def find_user(sessionmaker: async_sessionmaker[AsyncSession], identifier: str) -> User | None:
    """The user whose username or email is `identifier`, in a unit of work of its own,
    ended before any hashing: a login waiting for the hashing slot holds no connection (a
    burst of logins held the pool idle in transaction)."""
    async with transaction(sessionmaker) as session:
        return await repository.get_by_login(session, identifier)


async def check_password(
    sessionmaker: async_sessionmaker[AsyncSession], user: User | None, password: str
) -> bool:
    """Whether `password` is `user`'s. Once the session is written to Redis nothing is left
    to commit, so no session is handed out for database work that then fails."""
    if user is None:
        # Same work as a wrong password, so timing does not reveal which it was
        # (Django ticket #20760).
        await verify_password(password, dummy_hash())
        return False
    verified, upgraded = await verify_password(password, user.hashed_password)
    if not verified:
        return False
    if upgraded is not None:  # a legacy (bcrypt) hash, replaced by Argon2id
        async with transaction(sessionmaker) as session:
            current = await get_row(session, User, user.id)
            if current is not None and current.hashed_password == user.hashed_password:
                await repository.update(session, current, {"hashed_password": upgraded})
    return True


async def login(
    auth: Auth,
    strategy: SessionStrategy,
    identifier: str,
    password: str,
    *,
    presented: tuple[str | None, str | None],
) -> tuple[User, NewSession | SecondStep]:
    """The user and their new session, or the second step they still owe. `presented`
    (the session and refresh cookies the request carried) is ended when a session is
    made: a session the server did not issue at this login is never kept."""
    # Counted before the password is checked, so guessing costs the guesser, not the hasher:
    # per address first (no database read for a flood), then per account.
    device = auth.devices.presented(auth.request)
    try:
        await auth.limits.check_login_address(auth.request)
        user = await find_user(auth.sessionmaker, identifier)
        # A browser this account has logged in from is counted per device cookie instead of
        # per account, so that a guesser cannot lock the owner out (app/auth/devices.py).
        # Looked up for an unknown name too: the same work whether or not the account exists.
        known = device is not None and await devices.is_known(
            auth.sessionmaker, user.id if user else 0, device
        )
        if device is not None:
            await auth.limits.check_login_device(auth.request, devices.digest(device))
        if not known:
            await auth.limits.check_login_account(auth.request, user.id if user else None, identifier)
    except AppError as exc:
        if exc.code is ErrorCode.RATE_LIMITED:
            auth.metrics.login("rate_limited")
        raise
    # Checked (hashed) for an unknown user too, before anything looks at `user`.
    verified = await check_password(auth.sessionmaker, user, password)
    if user is None or not verified:
        _login_outcome(auth, "failure", subject=_subject(auth.settings.signing_key, identifier))
        if user is not None:  # a wrong password for this account (an unknown name has no log)
            _security_event(auth, user.id, SecurityEvent.LOGIN_FAILED)
        raise AppError(ErrorCode.INVALID_CREDENTIALS)
    # Only after the right password: otherwise this answer would reveal the account.
    if not user.is_active:
        _login_outcome(auth, "inactive", actor=user.id)
        raise AppError(ErrorCode.USER_INACTIVE)
    methods = (user.mfa_methods or "").split()
    if has_second_factor(methods):
        cookie = await auth.challenges.open(user.id)
        _login_outcome(auth, "second_factor_required", actor=user.id)
        return user, SecondStep(cookie, methods)
    return user, await open_session(auth, strategy, user, Assurance.password(), presented=presented)


async def open_session(
    auth: Auth,
    strategy: SessionStrategy,
    user: User,
    assurance: Assurance,
    *,
    presented: tuple[str | None, str | None],
    device: str | None = None,
) -> NewSession:
    """The login's session, once every factor is checked: the presented one ended first.
    `device`: the device cookie the login began with, for a request that cannot carry it
    (an identity provider's redirect, cross-site: the cookie is SameSite=Strict); by
    default, the request's own."""
    if any(presented):
        await auth.store.end_login(*presented)
    strategy.assurance = assurance
    # Last, after every database step has committed: the session is the login's only effect.
    carrier = await auth.backend.login(as_library_strategy(strategy), user)
    assert strategy.issued is not None  # write_token ran
    tokens = strategy.issued
    try:
        minted = await _remember_device(
            auth, user, tokens.login_id, device or auth.devices.presented(auth.request)
        )
    except BaseException:
        # No login without its record (the device, the notice): it ends here, and the
        # database's outage answers 503.
        await auth.store.end_login(tokens.session, tokens.refresh)
        raise
    new = NewSession(carrier, tokens, auth.csrf.issue(tokens.session), minted)
    _login_outcome(auth, "success", actor=user.id, login=new.tokens.login_id, amr=list(assurance.amr))
    _security_event(
        auth, user.id, SecurityEvent.LOGIN, session_id=new.tokens.login_id, amr=list(assurance.amr)
    )
    return new


async def _remember_device(auth: Auth, user: User, login_id: str, presented: str | None) -> str | None:
    """The browser is known for the account from now on. A login from a browser it was not
    known for (a new device cookie, or none) is told to the account's address with a link
    that ends this login ("this wasn't me", API.md section 10). Returns a minted cookie."""
    async with transaction(auth.sessionmaker) as session:
        known = presented is not None and await devices.is_known_in(session, user.id, presented)
        cookie = presented or auth.devices.mint()
        await devices.remember(session, user.id, cookie)
        if not known:
            token = await account_tokens.issue(
                session, user.id, account_tokens.REPORT_LOGIN, {"login_id": login_id}
            )
            link = mail_link(auth.settings.public_url, "/report-login", token)
            details = {"session_id": login_id}
            enqueue_notice(session, auth.request, user, "new_device_login", details=details, link=link)
    return None if presented is not None else cookie


async def report_login(auth: Auth, token: str) -> None:
    """ "This wasn't me" (API.md section 10): the login the notice told of ends, with every
    session descended from it, whoever holds it."""
    async with transaction(auth.sessionmaker) as session:
        spent = await account_tokens.spend(session, token, account_tokens.REPORT_LOGIN)
        if spent is None:
            raise AppError(ErrorCode.INVALID_TOKEN, "This link is invalid, used or expired.")
        user_id, data = spent
        login_id = str(data.get("login_id", ""))
        # Ended before the commit: if Redis is down the token stays unspent for a retry.
        await auth.store.revoke_login(user_id, login_id)
        record_event(session, auth.request, user_id, SecurityEvent.LOGIN_REPORTED, {"session_id": login_id})
    audit(auth.request, "report_login", "login_revoked", actor=user_id, login=login_id, level=WARNING)


async def refresh(auth: Auth, token: str | None, session: str | None) -> NewSession:
    """Both tokens replaced, the old pair revoked at once, the login's end unchanged. A
    refresh token already rotated is refused: within REFRESH_REUSE_GRACE_SECONDS (two tabs
    refreshing at once) nothing else happens; later the whole login is revoked. `session`
    is the session cookie sent with it: one of another login refuses the refresh (a refresh
    cookie planted from a sibling subdomain must not swap the browser's account)."""
    if not token:
        raise RefreshRefused(clear_cookies=False)
    settings = auth.settings
    result = await auth.store.refresh(
        token,
        session_ttl=settings.access_token_seconds,
        grace=settings.refresh_reuse_grace_seconds,
        session=session,
        limit=auth.limits.limits.refresh,
    )
    outcome, actor, login_id = result.outcome, result.user_id, result.login_id
    if outcome is RefreshOutcome.ROTATED and result.tokens is not None:
        carrier = await auth.backend.transport.get_login_response(result.tokens.session)
        new = NewSession(carrier, result.tokens, auth.csrf.issue(result.tokens.session))
        audit(auth.request, "refresh", "success", actor=actor, login=login_id)
        return new
    if outcome is RefreshOutcome.LIMITED:
        audit(auth.request, "rate_limited", "denied", actor=actor, scope="refresh", login=login_id)
        raise AppError(ErrorCode.RATE_LIMITED, headers={"Retry-After": str(result.retry_after or 1)})
    if outcome in (RefreshOutcome.GRACE, RefreshOutcome.MISMATCH):
        # A concurrent tab already rotated it, or the browser's session is another login's:
        # change nothing, not even the cookies.
        audit(
            auth.request,
            "refresh",
            outcome.value,
            actor=actor,
            login=login_id,
            level=WARNING if outcome is RefreshOutcome.MISMATCH else INFO,
        )
        raise RefreshRefused(clear_cookies=False)
    if outcome is RefreshOutcome.REUSED:
        audit(auth.request, "refresh_reuse", "login_revoked", actor=actor, login=login_id, level=WARNING)
        if actor is not None:
            _security_event(auth, actor, SecurityEvent.REFRESH_REUSE_DETECTED, session_id=login_id)
    else:
        audit(auth.request, "refresh", "invalid", actor=actor)
    raise RefreshRefused(clear_cookies=True)


async def logout(auth: Auth, strategy: SessionStrategy, session_token: str | None) -> Response | None:
    """The library's response clearing the session cookie when a login ended (that of the
    session cookie, or of the refresh cookie), else None."""
    if not session_token and not strategy.refresh_token:
        return None
    carrier = await auth.backend.logout(as_library_strategy(strategy), None, session_token or "")  # type: ignore[arg-type]
    if strategy.ended is None:
        return None
    user_id, login_id = strategy.ended
    audit(auth.request, "logout", "success", actor=user_id, login=login_id)
    _security_event(auth, user_id, SecurityEvent.LOGOUT, session_id=login_id)
    return carrier


async def logout_all(auth: Auth, principal: Principal) -> int:
    """Every login of the caller's user ended; how many."""
    count = await auth.store.revoke_user(principal.user.id)
    audit(auth.request, "logout_all", "success", actor=principal.user.id, revoked=count)
    _security_event(auth, principal.user.id, SecurityEvent.LOGOUT_ALL, sessions_revoked=count)
    return count
