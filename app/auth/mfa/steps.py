"""The flows that present a second factor (API.md section 9): finishing a login's second
step, a passkey login without a password, and re-authenticating a signed-in session.

Each counts toward the login rate limits before it checks anything (per address, then
per account once the account is known: a wrong code costs what a wrong password costs),
checks the factor in a committed unit of work of its own (factors.py), and only then
writes to the session store: a session is the flow's last effect, as in a login.
"""

import time
from dataclasses import dataclass
from logging import WARNING
from typing import Any

from starlette.requests import HTTPConnection

from app.audit import audit
from app.auth.backend import SessionStrategy
from app.auth.mfa import passkeys
from app.auth.mfa import repository as factors_db
from app.auth.mfa.factors import AMR, MfaKeys, check_factor, spend_assertion
from app.auth.mfa.passkeys import Check, RelyingParty
from app.auth.mfa.schemas import FactorProof, Reauthentication
from app.auth.passwords import dummy_hash, verify_password
from app.auth.principal import Assurance, Principal
from app.auth.service import Auth, NewSession, open_session
from app.db import get_row, transaction
from app.errors import AppError, ErrorCode
from app.models import User
from app.security_log import SecurityEvent, record_event_soon

STEP_PURPOSE = "reauth"  # the WebAuthn challenge of a re-authentication, bound to the login


@dataclass(frozen=True, slots=True)
class Mfa:
    """What the flows need for one request, on top of the session flows' `Auth`."""

    auth: Auth
    keys: MfaKeys
    rp: RelyingParty

    @property
    def request(self) -> HTTPConnection:
        return self.auth.request


async def _load_user(mfa: Mfa, user_id: int) -> User | None:
    async with transaction(mfa.auth.sessionmaker) as session:
        return await get_row(session, User, user_id)


async def _count_attempt(mfa: Mfa, user_id: int) -> None:
    await mfa.auth.limits.check_login_address(mfa.request)
    await mfa.auth.limits.check_login_account(mfa.request, user_id, "")


async def step_options(mfa: Mfa, cookie: str | None) -> dict[str, object]:
    """Request options naming the pending step's user's passkeys."""
    step = await mfa.auth.challenges.get(cookie) if cookie else None
    if step is None or step.user_id is None:
        raise AppError(ErrorCode.MFA_CHALLENGE_EXPIRED)
    async with transaction(mfa.auth.sessionmaker) as session:
        allowed = await factors_db.passkeys_of(session, step.user_id)
    options, challenge = passkeys.request_options(mfa.rp, allowed)
    if not await mfa.auth.challenges.set_webauthn(cookie or "", challenge):
        raise AppError(ErrorCode.MFA_CHALLENGE_EXPIRED)
    return options


async def verify_step(
    mfa: Mfa,
    strategy: SessionStrategy,
    cookie: str | None,
    proof: FactorProof,
    *,
    presented: tuple[str | None, str | None],
) -> tuple[User, NewSession]:
    """The second step: a right factor makes the login's session (aal 2); the
    MAX_FAILURES-th wrong one ends the step."""
    challenges = mfa.auth.challenges
    step = await challenges.get(cookie) if cookie else None
    if cookie is None or step is None or step.user_id is None:
        raise AppError(ErrorCode.MFA_CHALLENGE_EXPIRED)
    await _count_attempt(mfa, step.user_id)
    challenge = await challenges.take_webauthn(cookie) if proof.method == "webauthn" else None
    try:
        right = await check_factor(
            mfa.auth.sessionmaker, mfa.keys, mfa.rp, step.user_id, proof, challenge, request=mfa.request
        )
    except AppError:
        right = False
        code = ErrorCode.INVALID_PASSKEY
    else:
        code = ErrorCode.INVALID_MFA_CODE
    if not right:
        failures = await challenges.fail(cookie)
        audit(
            mfa.request, "mfa_verify", "failure", actor=step.user_id, method=proof.method, failures=failures
        )
        if failures < 0:
            raise AppError(ErrorCode.MFA_CHALLENGE_EXPIRED)
        raise AppError(code)
    # One verification ends the step: a second right code racing this one gets nothing.
    if not await challenges.finish(cookie):
        raise AppError(ErrorCode.MFA_CHALLENGE_EXPIRED)
    user = await _load_user(mfa, step.user_id)
    if user is None:
        raise AppError(ErrorCode.MFA_CHALLENGE_EXPIRED)
    if not user.is_active:
        audit(mfa.request, "mfa_verify", "inactive", actor=user.id)
        raise AppError(ErrorCode.USER_INACTIVE)
    assurance = Assurance(2, (step.first, AMR[proof.method]), time.time())
    return user, await open_session(mfa.auth, strategy, user, assurance, presented=presented)


async def passkey_options(mfa: Mfa) -> tuple[dict[str, object], str]:
    """Options for a discoverable passkey, and the cookie of the step they belong to."""
    await mfa.auth.limits.check_login_address(mfa.request)
    options, challenge = passkeys.request_options(mfa.rp, None)
    cookie = await mfa.auth.challenges.open(None)
    await mfa.auth.challenges.set_webauthn(cookie, challenge)
    return options, cookie


async def passkey_login(
    mfa: Mfa,
    strategy: SessionStrategy,
    cookie: str | None,
    credential: dict[str, Any],
    *,
    presented: tuple[str | None, str | None],
) -> tuple[User, NewSession]:
    """A login by passkey alone (aal 2: possession and user verification)."""
    challenges = mfa.auth.challenges
    step = await challenges.get(cookie) if cookie else None
    if cookie is None or step is None or step.user_id is not None:
        raise AppError(ErrorCode.MFA_CHALLENGE_EXPIRED)
    await mfa.auth.limits.check_login_address(mfa.request)
    # Taken before anything is checked: whatever the answer, this challenge is spent.
    challenge = await challenges.take_webauthn(cookie)
    named = passkeys.asserted_ids(credential)
    if named is None or challenge is None:
        raise AppError(ErrorCode.INVALID_PASSKEY)
    credential_id, handle = named
    async with transaction(mfa.auth.sessionmaker) as session:
        passkey = await factors_db.passkey_by_credential(session, credential_id)
        if passkey is None or (handle is not None and handle != passkey.user_handle):
            audit(mfa.request, "passkey_login", "unknown_credential")
            raise AppError(ErrorCode.INVALID_CREDENTIALS)
        check = await spend_assertion(
            session, mfa.rp, passkey, credential, challenge, require_verified_user=True
        )
        if check is Check.INVALID:
            raise AppError(ErrorCode.INVALID_PASSKEY)
        if check is not Check.OK:
            audit(mfa.request, "passkey_login", check.value, actor=passkey.user_id, level=WARNING)
            raise AppError(ErrorCode.INVALID_CREDENTIALS)
        user = await get_row(session, User, passkey.user_id)
    await mfa.auth.limits.check_login_account(mfa.request, passkey.user_id, "")
    await challenges.finish(cookie)
    if user is None:
        raise AppError(ErrorCode.INVALID_CREDENTIALS)
    if not user.is_active:
        audit(mfa.request, "passkey_login", "inactive", actor=user.id)
        raise AppError(ErrorCode.USER_INACTIVE)
    assurance = Assurance(2, ("webauthn",), time.time())
    return user, await open_session(mfa.auth, strategy, user, assurance, presented=presented)


async def reauth_options(mfa: Mfa, principal: Principal) -> dict[str, object]:
    async with transaction(mfa.auth.sessionmaker) as session:
        allowed = await factors_db.passkeys_of(session, principal.user.id)
    if not allowed:
        raise AppError(ErrorCode.CONFLICT, "You have no passkey to re-authenticate with.")
    options, challenge = passkeys.request_options(mfa.rp, allowed)
    await mfa.auth.challenges.bind(STEP_PURPOSE, principal.login_id, challenge)
    return options


async def reauthenticate(mfa: Mfa, principal: Principal, body: Reauthentication) -> float:
    """Makes the session fresh; its new auth_time."""
    user_id = principal.user.id
    await _count_attempt(mfa, user_id)
    proof = body.proof()
    if proof is None:
        if principal.user.has_second_factor:
            raise AppError(ErrorCode.SECOND_FACTOR_REQUIRED)
        async with transaction(mfa.auth.sessionmaker) as session:
            user = await get_row(session, User, user_id)
        verified, _ = await verify_password(
            body.password or "", user.hashed_password if user else dummy_hash()
        )
        if user is None or not verified:
            audit(mfa.request, "reauthenticate", "failure", actor=user_id, method="password")
            raise AppError(ErrorCode.INVALID_CREDENTIALS)
        method = "pwd"
        assurance = principal.assurance.presented(method, aal=principal.assurance.aal)
    else:
        challenge = None
        if proof.method == "webauthn":
            challenge = await mfa.auth.challenges.take(STEP_PURPOSE, principal.login_id)
        if not await check_factor(
            mfa.auth.sessionmaker, mfa.keys, mfa.rp, user_id, proof, challenge, request=mfa.request
        ):
            audit(mfa.request, "reauthenticate", "failure", actor=user_id, method=proof.method)
            raise AppError(ErrorCode.INVALID_MFA_CODE)
        method = AMR[proof.method]
        assurance = principal.assurance.presented(method, aal=2)
    if not await mfa.auth.store.assure(user_id, principal.login_id, assurance):
        raise AppError(ErrorCode.NOT_AUTHENTICATED)
    audit(mfa.request, "reauthenticated", "success", actor=user_id, login=principal.login_id, method=method)
    details = {"session_id": principal.login_id, "method": method}
    record_event_soon(mfa.auth.sessionmaker, mfa.request, user_id, SecurityEvent.REAUTHENTICATED, details)
    return assurance.auth_time
