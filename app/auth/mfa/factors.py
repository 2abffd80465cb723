"""Checking a second factor, and keeping `User.mfa_methods` true to the factors' tables.

Each check is its own committed unit of work, done before any session is written to
Redis (as login's are, app/auth/service.py): a used TOTP step or recovery code stays
used even if what follows fails, which errs toward refusing a replay. A spent recovery
code queues its `recovery_code_used` notice in that same unit of work.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.auth import repository as users
from app.auth.mfa import passkeys, repository, totp
from app.auth.mfa.crypto import RecoveryCodes, SecretBox
from app.auth.mfa.passkeys import Check, RelyingParty
from app.auth.mfa.schemas import FactorProof
from app.auth.notices import enqueue_notice
from app.config import Settings
from app.db import transaction
from app.errors import AppError, ErrorCode
from app.models import Passkey, User
from app.state import Key

# The amr value (API.md section 9) each method adds to a session.
AMR = {"totp": "otp", "recovery_code": "recovery_code", "webauthn": "webauthn"}


@dataclass(frozen=True, slots=True)
class MfaKeys:
    box: SecretBox
    codes: RecoveryCodes

    @classmethod
    def from_settings(cls, settings: Settings) -> "MfaKeys":
        return cls(SecretBox(settings.signing_key), RecoveryCodes(settings.signing_key))


MFA_KEYS: Key[MfaKeys] = Key("mfa_keys")


async def sync_methods(session: AsyncSession, user: User) -> None:
    """Record the user's methods as the tables now have them; the changed row makes the
    session snapshot follow after the commit (app/auth/cache.py)."""
    await session.flush()
    methods = await repository.methods_of(session, user.id)
    if user.mfa_methods != methods:
        user.mfa_methods = methods


async def check_totp(
    sessionmaker: async_sessionmaker[AsyncSession], box: SecretBox, user_id: int, code: str
) -> bool:
    async with transaction(sessionmaker) as session:
        row = await repository.totp_of(session, user_id)
        if row is None or row.confirmed_at is None:
            return False
        secret = box.open(row.secret, user_id=user_id)
        step = totp.matching_step(secret, code) if secret else None
        return step is not None and await repository.use_totp_step(session, user_id, step)


async def use_recovery_code(
    sessionmaker: async_sessionmaker[AsyncSession],
    codes: RecoveryCodes,
    user_id: int,
    code: str,
    *,
    request: HTTPConnection | None = None,
) -> User | None:
    """The user, once the code is spent (the notice queued and the security log written in
    the same transaction); None for a wrong or used one."""
    async with transaction(sessionmaker) as session:
        user = await users.lock(session, user_id)
        if user is None or not await repository.use_recovery_code(session, user_id, codes.digest(code)):
            return None
        await sync_methods(session, user)
        left = await repository.recovery_codes_left(session, user_id)
        enqueue_notice(session, request, user, "recovery_code_used", details={"codes_left": left})
        return user


async def spend_assertion(
    session: AsyncSession,
    rp: RelyingParty,
    passkey: Passkey,
    credential: dict[str, Any],
    challenge: str | None,
    *,
    require_verified_user: bool,
) -> Check:
    """How `passkey`'s assertion fares; an OK one is recorded (its counter, last used) by a
    compare-and-set, so of two concurrent uses of one counter value only one is OK."""
    check, count = passkeys.check_assertion(
        rp, credential, challenge, passkey, require_verified_user=require_verified_user
    )
    if check is Check.OK and not await repository.use_passkey(session, passkey.id, passkey.sign_count, count):
        return Check.COUNTER
    return check


async def check_passkey(
    sessionmaker: async_sessionmaker[AsyncSession],
    rp: RelyingParty,
    user_id: int,
    credential: dict[str, Any],
    challenge: str | None,
) -> None:
    """A passkey assertion as a second factor: by one of this user's passkeys, for this
    challenge; 400 `invalid_passkey` otherwise."""
    named = passkeys.asserted_ids(credential)
    if named is None:
        raise AppError(ErrorCode.INVALID_PASSKEY)
    async with transaction(sessionmaker) as session:
        passkey = await repository.passkey_by_credential(session, named[0])
        if passkey is None or passkey.user_id != user_id:
            raise AppError(ErrorCode.INVALID_PASSKEY)
        check = await spend_assertion(
            session, rp, passkey, credential, challenge, require_verified_user=False
        )
        if check is not Check.OK:
            raise AppError(ErrorCode.INVALID_PASSKEY)


async def check_factor(
    sessionmaker: async_sessionmaker[AsyncSession],
    keys: MfaKeys,
    rp: RelyingParty,
    user_id: int,
    proof: FactorProof,
    challenge: str | None,
    *,
    request: HTTPConnection | None = None,
) -> bool:
    """Whether `proof` is a right second factor of the user (then spent: a step, a code, a
    counter). A wrong passkey raises 400 `invalid_passkey`; the caller counts it as it
    counts a wrong code. `request`: whose address a recovery code's notice names."""
    if proof.method == "webauthn":
        assert proof.credential is not None  # FactorProof's validator
        await check_passkey(sessionmaker, rp, user_id, proof.credential, challenge)
        return True
    assert proof.code is not None
    if proof.method == "totp":
        return await check_totp(sessionmaker, keys.box, user_id, proof.code)
    return await use_recovery_code(sessionmaker, keys.codes, user_id, proof.code, request=request) is not None
