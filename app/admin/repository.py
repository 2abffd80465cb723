"""All SQL for the admin routes."""

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Item, User


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(statement: Select, q: str | None, is_active: bool | None) -> Select:
    if q:
        pattern = f"%{_escape_like(q.lower())}%"
        statement = statement.where(
            or_(
                func.lower(User.username).like(pattern, escape="\\"),
                func.lower(User.email).like(pattern, escape="\\"),
            )
        )
    if is_active is not None:
        statement = statement.where(User.is_active == is_active)
    return statement


async def list_users(
    session: AsyncSession, *, q: str | None, is_active: bool | None, limit: int, offset: int
) -> tuple[list[User], int]:
    total = await session.scalar(_filtered(select(func.count()).select_from(User), q, is_active))
    rows = await session.scalars(
        _filtered(select(User), q, is_active).order_by(User.id).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def get(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def lock_active_superusers(session: AsyncSession) -> set[int]:
    """The ids of the active superusers, locked until the transaction ends.

    Call it before reading the user about to be demoted, deactivated or deleted: two
    admins demoting each other at once then run one after the other, and the second
    sees the first's commit. On PostgreSQL (READ COMMITTED) a waiting FOR UPDATE
    re-checks each row once its lock is free, so a superuser demoted meanwhile drops
    out of the result; ordering by id makes every caller lock in the same order (no
    deadlock). SQLite has a single writer and no FOR UPDATE, so no lock is taken there.
    """
    statement = select(User.id).where(User.is_superuser, User.is_active).order_by(User.id)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    return set(await session.scalars(statement))


async def delete(session: AsyncSession, user: User) -> None:
    # An ORM delete, not a bulk one, so that app/auth/cache.py sees it. User declares
    # no relationship to Item, so the ORM issues no UPDATE nulling owner_id first: the
    # database's ON DELETE CASCADE removes the items.
    await session.delete(user)
    await session.flush()


async def owned_items(session: AsyncSession, user_id: int) -> list[Item]:
    return list(await session.scalars(select(Item).where(Item.owner_id == user_id).order_by(Item.id)))
