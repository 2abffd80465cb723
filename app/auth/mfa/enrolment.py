"""A signed-in user's own second factors (API.md section 9): TOTP, recovery codes, passkeys.

Every change runs on a fresh session (the routes ask for one), in one transaction that
first locks the user's row, so that concurrent changes to one user's factors take turns
and `User.mfa_methods` follows the last of them. Enabling the user's first second factor
(or confirming TOTP) revokes every other session before the commit, as a password change
does (if Redis is down nothing is changed), and makes this one `aal` 2 after it. Every
change queues its notice in its own transaction: mailed if and only if it commits.
"""

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import audit
from app.auth import repository as users
from app.auth.mfa import passkeys, repository, totp
from app.auth.mfa.factors import AMR, sync_methods
from app.auth.mfa.schemas import MfaStatus, PasskeyCreated, PasskeyRead, TotpEnrolment
from app.auth.mfa.steps import Mfa
from app.auth.notices import enqueue_notice
from app.auth.principal import Principal, has_second_factor
from app.db import transaction, utcnow
from app.errors import AppError, ErrorCode
from app.models import Passkey, TotpSecret, User

REGISTER_PURPOSE = "register"


@dataclass(frozen=True, slots=True)
class Enabled:
    """What enabling a factor did: new recovery codes (None: the user had some) and
    whether it was the user's first second factor."""

    recovery_codes: list[str] | None
    first: bool


async def status(mfa: Mfa, principal: Principal) -> MfaStatus:
    async with transaction(mfa.auth.sessionmaker) as session:
        row = await repository.totp_of(session, principal.user.id)
        keys = await repository.passkeys_of(session, principal.user.id)
        left = await repository.recovery_codes_left(session, principal.user.id)
    return MfaStatus(
        totp=row is not None and row.confirmed_at is not None,
        passkeys=[PasskeyRead.model_validate(key) for key in keys],
        recovery_codes_left=left,
    )


async def _locked(session: AsyncSession, principal: Principal) -> User:
    user = await users.lock(session, principal.user.id)
    if user is None:
        raise AppError(ErrorCode.NOT_AUTHENTICATED)
    return user


async def _new_codes(mfa: Mfa, session: AsyncSession, user_id: int) -> list[str]:
    codes = mfa.keys.codes.generate()
    await repository.replace_recovery_codes(session, user_id, [mfa.keys.codes.digest(c) for c in codes])
    return codes


async def _after_enabling(mfa: Mfa, principal: Principal, method: str) -> None:
    """This session becomes aal 2 with the factor just presented, fresh from now."""
    assurance = principal.assurance.presented(AMR[method], aal=2)
    await mfa.auth.store.assure(principal.user.id, principal.login_id, assurance)


async def enrol_totp(mfa: Mfa, principal: Principal) -> TotpEnrolment:
    """A new pending secret (replacing an unconfirmed one); 409 when TOTP is on already."""
    secret = totp.new_secret()
    async with transaction(mfa.auth.sessionmaker) as session:
        user = await _locked(session, principal)
        row = await repository.totp_of(session, user.id)
        if row is not None and row.confirmed_at is not None:
            raise AppError(ErrorCode.CONFLICT, "TOTP is already enabled: disable it first.")
        sealed = mfa.keys.box.seal(secret, user_id=user.id)
        if row is None:
            session.add(TotpSecret(user_id=user.id, secret=sealed, last_step=0))
        else:
            row.secret, row.created_at, row.last_step = sealed, utcnow(), 0
    uri = totp.provisioning_uri(secret, username=principal.user.username, issuer=mfa.rp.name)
    audit(mfa.request, "mfa.totp_enrol", "pending", actor=principal.user.id)
    return TotpEnrolment(secret=secret, otpauth_uri=uri, qr_svg=totp.qr_svg(uri))


async def confirm_totp(mfa: Mfa, principal: Principal, code: str) -> list[str]:
    """TOTP on, with the first code from the app; the new recovery codes ([] when the user
    had some). One of two concurrent confirmations wins; the other gets 409."""
    async with transaction(mfa.auth.sessionmaker) as session:
        user = await _locked(session, principal)
        row = await repository.totp_of(session, user.id)
        if row is None or row.confirmed_at is not None:
            raise AppError(ErrorCode.CONFLICT, "No TOTP enrolment is pending.")
        secret = mfa.keys.box.open(row.secret, user_id=user.id)
        step = totp.matching_step(secret, code) if secret else None
        if step is None:
            raise AppError(ErrorCode.INVALID_MFA_CODE)
        if not await repository.confirm_totp(session, user.id, row.secret, step):
            raise AppError(ErrorCode.CONFLICT, "No TOTP enrolment is pending.")
        had_codes = await repository.recovery_codes_left(session, user.id) > 0
        codes = [] if had_codes else await _new_codes(mfa, session, user.id)
        await sync_methods(session, user)
        enqueue_notice(session, mfa.request, user, "mfa_enabled", details={"method": "totp"})
        await mfa.auth.store.revoke_user(user.id, keep=principal.login_id)
    await _after_enabling(mfa, principal, "totp")
    return codes


async def disable_totp(mfa: Mfa, principal: Principal) -> None:
    async with transaction(mfa.auth.sessionmaker) as session:
        user = await _locked(session, principal)
        row = await repository.totp_of(session, user.id)
        if row is None or row.confirmed_at is None:
            raise AppError(ErrorCode.NOT_FOUND, "TOTP is not enabled.")
        await repository.delete_totp(session, user.id)
        if not await repository.passkeys_of(session, user.id):
            await repository.replace_recovery_codes(session, user.id, [])
        await sync_methods(session, user)
        enqueue_notice(session, mfa.request, user, "mfa_disabled", details={"method": "totp"})


async def regenerate_codes(mfa: Mfa, principal: Principal) -> list[str]:
    async with transaction(mfa.auth.sessionmaker) as session:
        user = await _locked(session, principal)
        if not has_second_factor((await repository.methods_of(session, user.id)).split()):
            raise AppError(ErrorCode.CONFLICT, "Recovery codes need a second factor first.")
        codes = await _new_codes(mfa, session, user.id)
        await sync_methods(session, user)
        enqueue_notice(session, mfa.request, user, "recovery_codes_regenerated")
    return codes


async def passkey_options(mfa: Mfa, principal: Principal) -> dict[str, object]:
    async with transaction(mfa.auth.sessionmaker) as session:
        existing = await repository.passkeys_of(session, principal.user.id)
    handle = passkeys.user_handle(mfa.auth.settings.signing_key, principal.user.id)
    options, challenge = passkeys.creation_options(
        mfa.rp, handle=handle, username=principal.user.username, existing=existing
    )
    await mfa.auth.challenges.bind(REGISTER_PURPOSE, principal.login_id, challenge)
    return options


async def add_passkey(
    mfa: Mfa, principal: Principal, name: str, credential: dict[str, object]
) -> PasskeyCreated:
    challenge = await mfa.auth.challenges.take(REGISTER_PURPOSE, principal.login_id)
    new = passkeys.verify_new(mfa.rp, credential, challenge)
    handle = passkeys.user_handle(mfa.auth.settings.signing_key, principal.user.id)
    try:
        async with transaction(mfa.auth.sessionmaker) as session:
            user = await _locked(session, principal)
            if await repository.passkey_by_credential(session, new.credential_id) is not None:
                raise AppError(ErrorCode.CONFLICT, "This passkey is registered already.")
            first = not has_second_factor((await repository.methods_of(session, user.id)).split())
            passkey = Passkey(
                user_id=user.id,
                credential_id=new.credential_id,
                public_key=new.public_key,
                sign_count=new.sign_count,
                transports=new.transports,
                user_handle=handle,
                name=name,
            )
            session.add(passkey)
            had_codes = await repository.recovery_codes_left(session, user.id) > 0
            codes = await _new_codes(mfa, session, user.id) if first and not had_codes else None
            await sync_methods(session, user)
            details = {"passkey_id": passkey.id, "name": name}
            enqueue_notice(session, mfa.request, user, "passkey_added", details=details)
            if first:
                await mfa.auth.store.revoke_user(user.id, keep=principal.login_id)
    except IntegrityError as exc:  # the same credential registered concurrently
        raise AppError(ErrorCode.CONFLICT, "This passkey is registered already.") from exc
    if first:
        await _after_enabling(mfa, principal, "webauthn")
    return PasskeyCreated(
        id=passkey.id,
        name=passkey.name,
        created_at=passkey.created_at,
        last_used_at=None,
        recovery_codes=codes,
    )


async def remove_passkey(mfa: Mfa, principal: Principal, passkey_id: int) -> None:
    async with transaction(mfa.auth.sessionmaker) as session:
        user = await _locked(session, principal)
        passkey = await repository.passkey_of(session, user.id, passkey_id)
        if passkey is None:
            raise AppError(ErrorCode.NOT_FOUND, "Passkey not found.")
        await repository.delete_passkey(session, passkey)
        await session.flush()
        if not has_second_factor((await repository.methods_of(session, user.id)).split()):
            await repository.replace_recovery_codes(session, user.id, [])
        await sync_methods(session, user)
        details = {"passkey_id": passkey_id, "name": passkey.name}
        enqueue_notice(session, mfa.request, user, "passkey_removed", details=details)
