"""Every SQL statement on the known_device and account_token tables (app/models/account.py)."""

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.account import AccountToken, KnownDevice


async def device_known(session: AsyncSession, user_id: int, token_hash: str) -> bool:
    found = await session.scalar(
        select(KnownDevice.id).where(KnownDevice.user_id == user_id, KnownDevice.token_hash == token_hash)
    )
    return found is not None


async def remember_device(session: AsyncSession, user_id: int, token_hash: str, now: datetime) -> None:
    """Insert, or move its last login to `now`: two logins at once from one browser make one row."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(KnownDevice).values(
        user_id=user_id, token_hash=token_hash, created_at=now, last_login_at=now
    )
    await session.execute(
        statement.on_conflict_do_update(index_elements=["user_id", "token_hash"], set_={"last_login_at": now})
    )


async def drop_unspent_tokens(session: AsyncSession, user_id: int, purpose: str) -> None:
    await session.execute(
        delete(AccountToken).where(
            AccountToken.user_id == user_id, AccountToken.purpose == purpose, AccountToken.used_at.is_(None)
        )
    )


async def spend_token(
    session: AsyncSession, token_hash: str, purpose: str, now: datetime
) -> tuple[int, dict[str, Any]] | None:
    """Spent by one conditional UPDATE: two clicks, or two workers, spend it once."""
    row = (
        await session.execute(
            update(AccountToken)
            .where(
                AccountToken.token_hash == token_hash,
                AccountToken.purpose == purpose,
                AccountToken.used_at.is_(None),
                AccountToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(AccountToken.user_id, AccountToken.data)
        )
    ).first()
    return None if row is None else (row.user_id, dict(row.data or {}))
