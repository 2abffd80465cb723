"""Every SQL statement on the second-factor tables (app/models/mfa.py). The checks that
must hold under concurrency are single conditional UPDATEs, so that two workers racing
on one code, one enrolment or one passkey's counter cannot both win."""

from typing import Any

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.models import Passkey, RecoveryCode, TotpSecret


async def _changed(session: AsyncSession, statement: Any) -> bool:
    result: CursorResult[Any] = await session.execute(statement.execution_options(synchronize_session=False))  # type: ignore[assignment]
    return result.rowcount == 1


async def totp_of(session: AsyncSession, user_id: int) -> TotpSecret | None:
    return await session.get(TotpSecret, user_id, populate_existing=True)


async def confirm_totp(session: AsyncSession, user_id: int, sealed: str, step: int) -> bool:
    """The pending secret `sealed` becomes the user's TOTP, its code's step used; False when
    it is no longer pending (another confirmation won, or a new enrolment replaced it)."""
    return await _changed(
        session,
        update(TotpSecret)
        .where(TotpSecret.user_id == user_id, TotpSecret.secret == sealed, TotpSecret.confirmed_at.is_(None))
        .values(confirmed_at=utcnow(), last_step=step),
    )


async def use_totp_step(session: AsyncSession, user_id: int, step: int) -> bool:
    """Accept time step `step` of the user's confirmed TOTP at most once (RFC 6238 5.2): only
    a step later than the last one accepted."""
    return await _changed(
        session,
        update(TotpSecret)
        .where(
            TotpSecret.user_id == user_id,
            TotpSecret.confirmed_at.is_not(None),
            TotpSecret.last_step < step,
        )
        .values(last_step=step),
    )


async def delete_totp(session: AsyncSession, user_id: int) -> None:
    await session.execute(delete(TotpSecret).where(TotpSecret.user_id == user_id))


async def replace_recovery_codes(session: AsyncSession, user_id: int, digests: list[str]) -> None:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    session.add_all(RecoveryCode(user_id=user_id, code_hash=digest) for digest in digests)


async def use_recovery_code(session: AsyncSession, user_id: int, digest: str) -> bool:
    return await _changed(
        session,
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == digest,
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow()),
    )


async def recovery_codes_left(session: AsyncSession, user_id: int) -> int:
    statement = select(func.count()).where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    return int(await session.scalar(statement) or 0)


async def passkeys_of(session: AsyncSession, user_id: int) -> list[Passkey]:
    statement = select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.id)
    return list(await session.scalars(statement))


async def passkey_by_credential(session: AsyncSession, credential_id: bytes) -> Passkey | None:
    return await session.scalar(select(Passkey).where(Passkey.credential_id == credential_id))


async def passkey_of(session: AsyncSession, user_id: int, passkey_id: int) -> Passkey | None:
    return await session.scalar(select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user_id))


async def delete_passkey(session: AsyncSession, passkey: Passkey) -> None:
    await session.delete(passkey)


async def use_passkey(session: AsyncSession, passkey_id: int, seen_count: int, new_count: int) -> bool:
    """Record a use; False when another use moved the counter meanwhile (a cloned
    authenticator racing the real one)."""
    return await _changed(
        session,
        update(Passkey)
        .where(Passkey.id == passkey_id, Passkey.sign_count == seen_count)
        .values(sign_count=new_count, last_used_at=utcnow()),
    )


async def delete_all_factors(session: AsyncSession, user_id: int) -> None:
    await delete_totp(session, user_id)
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    await session.execute(delete(Passkey).where(Passkey.user_id == user_id))


async def methods_of(session: AsyncSession, user_id: int) -> str:
    """The user's second-factor methods as User.mfa_methods stores them."""
    totp = await session.scalar(
        select(func.count()).where(TotpSecret.user_id == user_id, TotpSecret.confirmed_at.is_not(None))
    )
    passkeys = await session.scalar(select(func.count()).where(Passkey.user_id == user_id))
    methods = []
    if totp:
        methods.append("totp")
    if passkeys:
        methods.append("webauthn")
    if methods and await recovery_codes_left(session, user_id):
        methods.append("recovery_code")
    return " ".join(methods)
