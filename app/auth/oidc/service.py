"""The sign-in flows with an OpenID Connect provider (API.md section 11): starting one,
and what its callback decides once the provider's answer is checked.

The callback, in order: the pending sign-in is taken (single use) and its state compared;
the code is exchanged and the ID token checked (providers.py); only then the database:
a known identity is its user; an unknown one with a verified email that no user has
makes a user (no usable password); an email some user has is never linked without that
user's fresh session (`account_exists`). The session is the last effect, made by the
password login's own `open_session` (amr ["oidc"], aal 1), or the second step of
API.md section 9 for a user with a second factor. Every refusal is a `SignInFailed`
raised before anything is written. Nothing here commits: `transaction()` does.
"""

import hmac
import re
import secrets
import time
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import audit
from app.auth import repository as users
from app.auth.backend import SessionStrategy
from app.auth.notices import enqueue_notice
from app.auth.oidc import flow
from app.auth.oidc import repository as identities
from app.auth.oidc.flow import PendingSignIn
from app.auth.oidc.providers import Claims, Failure, Provider, Providers, SignInFailed
from app.auth.passwords import has_usable_password, unusable_password
from app.auth.principal import Assurance, Principal, has_second_factor
from app.auth.service import Auth, NewSession, open_session
from app.db import get_row, transaction
from app.errors import AppError, ErrorCode
from app.models import OidcIdentity, User
from app.security_log import SecurityEvent, record_event

USERNAME_MIN, USERNAME_MAX = 3, 50
_NOT_USERNAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class Oidc:
    auth: Auth
    providers: Providers


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    new: NewSession
    next: str


@dataclass(frozen=True, slots=True)
class SecondStepOwed:
    """A user with a second factor: the pending step's cookie (API.md section 9)."""

    cookie: str


@dataclass(frozen=True, slots=True)
class Linked:
    next: str


def _provider(oidc: Oidc, name: str) -> Provider:
    provider = oidc.providers.get(name)
    if provider is None:
        raise AppError(ErrorCode.NOT_FOUND, "No such sign-in provider.")
    return provider


async def authorize(
    oidc: Oidc, name: str, *, redirect_uri: str, next_path: str | None, link: Principal | None
) -> tuple[str, str]:
    """(the provider's authorization URL, the cookie naming the pending sign-in)."""
    provider = _provider(oidc, name)
    made = await provider.authorization(redirect_uri)
    pending = PendingSignIn(
        provider=name,
        oauth_state=made.oauth_state,
        nonce=made.nonce,
        code_verifier=made.code_verifier,
        redirect_uri=redirect_uri,
        next=flow.safe_next(next_path),
        device=oidc.auth.devices.presented(oidc.auth.request),
        link_user=link.user.id if link else None,
        link_login=link.login_id if link else None,
    )
    cookie = await flow.begin(oidc.auth.challenges, pending)
    audit(oidc.auth.request, "oidc_authorize", "redirected", actor=pending.link_user, provider=name)
    return made.url, cookie


async def callback(
    oidc: Oidc,
    strategy: SessionStrategy,
    name: str,
    *,
    cookie: str | None,
    code: str | None,
    state: str | None,
    presented: tuple[str | None, str | None],
) -> SignedIn | SecondStepOwed | Linked:
    provider = _provider(oidc, name)
    auth = oidc.auth
    try:
        pending = await flow.take(auth.challenges, cookie)
        if pending is None or pending.provider != name or not state:
            raise SignInFailed(Failure.INVALID_STATE)
        if not hmac.compare_digest(state.encode(), pending.oauth_state.encode()):
            raise SignInFailed(Failure.INVALID_STATE)
        if not code:
            raise SignInFailed(Failure.EXCHANGE_FAILED)
        try:
            await auth.limits.check_login_address(auth.request)
        except AppError as exc:
            if exc.code is ErrorCode.RATE_LIMITED:
                raise SignInFailed(Failure.RATE_LIMITED) from None
            raise
        claims = await provider.sign_in(pending.redirect_uri, code, pending.code_verifier, pending.nonce)
        if pending.link_user is not None:
            return await _link(oidc, pending, claims)
        user = await _user_of(oidc, name, claims)
        if not user.is_active:
            raise SignInFailed(Failure.USER_INACTIVE)
    except SignInFailed as failed:
        audit(auth.request, "oidc_callback", failed.failure.value, provider=name)
        auth.metrics.login("failure")
        raise
    if has_second_factor((user.mfa_methods or "").split()):
        audit(auth.request, "login", "second_factor_required", actor=user.id, provider=name)
        return SecondStepOwed(await auth.challenges.open(user.id, first="oidc"))
    assurance = Assurance(1, ("oidc",), time.time())
    new = await open_session(auth, strategy, user, assurance, presented=presented, device=pending.device)
    audit(auth.request, "oidc_login", "success", actor=user.id, provider=name, login=new.tokens.login_id)
    return SignedIn(user, new, pending.next)


async def _user_of(oidc: Oidc, name: str, claims: Claims) -> User:
    """The identity's user, made first for a new identity with a verified email no one has."""
    try:
        async with transaction(oidc.auth.sessionmaker) as session:
            identity = await identities.find(session, name, claims.subject)
            if identity is not None:
                user = await get_row(session, User, identity.user_id)
                if user is None:  # deleted meanwhile: the identity went with it
                    raise SignInFailed(Failure.INVALID_STATE)
                return user
            return await _create_user(oidc, session, name, claims)
    except IntegrityError:
        # Another sign-in made this user, identity or email at the same moment.
        raise SignInFailed(Failure.ACCOUNT_EXISTS) from None


def _checked_email(claims: Claims) -> str:
    if not claims.email or not claims.email_verified or len(claims.email) > 320:
        raise SignInFailed(Failure.EMAIL_NOT_VERIFIED)
    try:
        validate_email(claims.email, check_deliverability=False)
    except EmailNotValidError:
        raise SignInFailed(Failure.EMAIL_NOT_VERIFIED) from None
    return claims.email


async def _create_user(oidc: Oidc, session: AsyncSession, name: str, claims: Claims) -> User:
    email = _checked_email(claims)
    # Never linked by email: the owner of the address links it from a fresh session.
    if await users.email_taken(session, email, but=0):
        raise SignInFailed(Failure.ACCOUNT_EXISTS)
    user = User(
        email=email,
        username=await _free_username(session, claims, email),
        hashed_password=unusable_password(),
        is_active=True,
        is_superuser=False,
        is_verified=True,  # the provider vouched for the address (email_verified)
    )
    await users.add(session, user)
    identity = await identities.add(
        session, OidcIdentity(provider=name, subject=claims.subject, email=email, user_id=user.id)
    )
    details = {"provider": name, "identity_id": identity.id, "user_created": True}
    record_event(session, oidc.auth.request, user.id, SecurityEvent.IDENTITY_LINKED, details)
    audit(oidc.auth.request, "oidc_user_created", "success", actor=user.id, provider=name)
    return user


def username_candidate(claims: Claims, email: str) -> str:
    """The claims' preferred_username, else the email's local part, made to fit the
    username rules (3 to 50 of letters, digits, `_`, `.`, `-`)."""
    for raw in (claims.preferred_username, email.partition("@")[0]):
        cleaned = _NOT_USERNAME.sub("", raw or "").strip(".-_")[: USERNAME_MAX - 5]
        if len(cleaned) >= USERNAME_MIN:
            return cleaned
    return "user"


async def _free_username(session: AsyncSession, claims: Claims, email: str) -> str:
    base = username_candidate(claims, email)
    candidate = base
    for _ in range(10):
        if not await users.username_taken(session, candidate):
            return candidate
        candidate = f"{base}-{secrets.token_hex(2)}"
    return f"{base}-{secrets.token_hex(6)}"[:USERNAME_MAX]


async def _link(oidc: Oidc, pending: PendingSignIn, claims: Claims) -> Linked:
    """The identity becomes a way into the account of the login that asked (fresh when it
    asked), if that login is still alive and no other user has the identity."""
    auth = oidc.auth
    user_id = pending.link_user
    assert user_id is not None
    try:
        async with transaction(auth.sessionmaker) as session:
            user = await users.lock(session, user_id)
            live = {login.id for login in await auth.store.list_user(user_id)}
            if user is None or not user.is_active or pending.link_login not in live:
                raise SignInFailed(Failure.INVALID_STATE)
            found = await identities.find(session, pending.provider, claims.subject)
            if found is not None:
                if found.user_id != user_id:
                    raise SignInFailed(Failure.IDENTITY_IN_USE)
                return Linked(pending.next)
            identity = await identities.add(
                session,
                OidcIdentity(
                    provider=pending.provider, subject=claims.subject, email=claims.email, user_id=user_id
                ),
            )
            details = {"provider": pending.provider, "identity_id": identity.id}
            enqueue_notice(session, auth.request, user, "identity_linked", details=details)
    except IntegrityError:
        raise SignInFailed(Failure.IDENTITY_IN_USE) from None
    audit(auth.request, "oidc_link", "success", actor=user_id, provider=pending.provider)
    return Linked(pending.next)


async def identities_of(session: AsyncSession, user_id: int) -> list[OidcIdentity]:
    return await identities.identities_of(session, user_id)


async def unlink(oidc: Oidc, session: AsyncSession, principal: Principal, identity_id: int) -> None:
    """404 for an identity that is not the user's; 409 when it is their only way to log in
    (no usable password, no passkey, no other identity)."""
    # The user's row locked first: two unlinks at once take turns, and the second sees
    # what the first left.
    user = await users.lock(session, principal.user.id)
    if user is None:
        raise AppError(ErrorCode.NOT_AUTHENTICATED)
    linked = await identities.identities_of(session, user.id)
    target = next((identity for identity in linked if identity.id == identity_id), None)
    if target is None:
        raise AppError(ErrorCode.NOT_FOUND)
    passkey = "webauthn" in (user.mfa_methods or "").split()
    if len(linked) == 1 and not passkey and not has_usable_password(user.hashed_password):
        raise AppError(
            ErrorCode.CONFLICT,
            "This is your only way to log in: set a password (forgot password) or add a passkey first.",
        )
    await identities.remove(session, target.id)
    details = {"provider": target.provider, "identity_id": target.id}
    enqueue_notice(session, oidc.auth.request, user, "identity_unlinked", details=details)
    audit(oidc.auth.request, "oidc_unlink", "success", actor=user.id, provider=target.provider)
