"""Every SQL statement on the access_token table."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AccessToken, User


async def tokens_of(session: AsyncSession, user_id: int) -> Sequence[AccessToken]:
    statement = select(AccessToken).where(AccessToken.user_id == user_id).order_by(AccessToken.id)
    return (await session.scalars(statement)).all()


async def count_of(session: AsyncSession, user_id: int) -> int:
    statement = select(func.count()).select_from(AccessToken).where(AccessToken.user_id == user_id)
    return int(await session.scalar(statement) or 0)


async def locked_by_digest(session: AsyncSession, token_hash: str) -> tuple[AccessToken, User] | None:
    """The token and its user, the token's row locked until the caller's commit: a
    revocation waits for the cache write that follows (service.py explains why)."""
    statement = (
        select(AccessToken, User)
        .join(User, User.id == AccessToken.user_id)
        .where(AccessToken.token_hash == token_hash)
        .with_for_update(of=AccessToken)
    )
    row = (await session.execute(statement)).first()
    return (row[0], row[1]) if row else None


async def record_use(session: AsyncSession, token_id: int, now: datetime, resolution: timedelta) -> None:
    """`last_used_at` = now, unless it was written within `resolution` (another worker)."""
    await session.execute(
        update(AccessToken)
        .where(AccessToken.id == token_id)
        .where(or_(AccessToken.last_used_at.is_(None), AccessToken.last_used_at < now - resolution))
        .values(last_used_at=now)
    )


async def delete_one(session: AsyncSession, user_id: int, token_id: int) -> AccessToken | None:
    token = (
        await session.scalars(
            select(AccessToken)
            .where(AccessToken.id == token_id, AccessToken.user_id == user_id)
            .with_for_update()
        )
    ).first()
    if token is not None:
        await session.delete(token)
        await session.flush()
    return token


async def delete_all(session: AsyncSession, user_id: int) -> list[tuple[int, str]]:
    """Delete every token of the user; (id, name) of each."""
    result = await session.execute(
        delete(AccessToken).where(AccessToken.user_id == user_id).returning(AccessToken.id, AccessToken.name)
    )
    return [(row[0], row[1]) for row in result.all()]
