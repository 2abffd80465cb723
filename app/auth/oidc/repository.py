"""Every SQL statement on the oidc_identity table."""

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import OidcIdentity


async def find(session: AsyncSession, provider: str, subject: str) -> OidcIdentity | None:
    return await session.scalar(
        select(OidcIdentity).where(OidcIdentity.provider == provider, OidcIdentity.subject == subject)
    )


async def identities_of(session: AsyncSession, user_id: int) -> list[OidcIdentity]:
    statement = select(OidcIdentity).where(OidcIdentity.user_id == user_id).order_by(OidcIdentity.id)
    return list(await session.scalars(statement))


async def count_of(session: AsyncSession, user_id: int) -> int:
    statement = select(func.count()).where(OidcIdentity.user_id == user_id)
    return int(await session.scalar(statement) or 0)


async def add(session: AsyncSession, identity: OidcIdentity) -> OidcIdentity:
    session.add(identity)
    await session.flush()
    return identity


async def remove(session: AsyncSession, identity_id: int) -> None:
    await session.execute(delete(OidcIdentity).where(OidcIdentity.id == identity_id))
