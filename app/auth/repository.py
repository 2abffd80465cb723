"""Every SQL statement on the user table, for auth and the domains built on it (users,
admin). Changes to a user go through the ORM, never bulk statements, so that the
session store's snapshots follow them (app/auth/cache.py)."""

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import contains_pattern
from app.models import User


async def get_by_login(session: AsyncSession, identifier: str) -> User | None:
    """The user whose username or email is `identifier`, any case. A username never
    contains "@", so one comparison decides which column."""
    column = User.email if "@" in identifier else User.username
    return await session.scalar(select(User).where(func.lower(column) == identifier.lower()))


async def email_taken(session: AsyncSession, email: str, *, but: int) -> bool:
    """Whether a user other than `but` has this email, any case."""
    statement = select(User.id).where(func.lower(User.email) == email.lower(), User.id != but)
    return (await session.execute(statement.limit(1))).first() is not None


async def username_taken(session: AsyncSession, username: str) -> bool:
    statement = select(User.id).where(func.lower(User.username) == username.lower())
    return (await session.execute(statement.limit(1))).first() is not None


async def taken(session: AsyncSession, email: str, username: str) -> bool:
    """Whether a user has this email or this username already, any case."""
    statement = select(User.id).where(
        or_(func.lower(User.email) == email.lower(), func.lower(User.username) == username.lower())
    )
    return (await session.execute(statement.limit(1))).first() is not None


def _filtered(statement: Select, q: str | None, is_active: bool | None) -> Select:
    if q:
        pattern = contains_pattern(q)
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
    """A page of users by id, and how many match in all."""
    total = await session.scalar(_filtered(select(func.count()).select_from(User), q, is_active))
    rows = await session.scalars(
        _filtered(select(User), q, is_active).order_by(User.id).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


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


async def lock(session: AsyncSession, user_id: int) -> User | None:
    """The user's row, locked until the transaction ends (PostgreSQL): changes to one user's
    factors take turns, so the methods recorded on the user follow the last of them."""
    return await session.scalar(
        select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
    )


async def add(session: AsyncSession, user: User) -> User:
    session.add(user)
    await session.flush()
    return user


async def update(session: AsyncSession, user: User, changes: dict[str, object]) -> User:
    for key, value in changes.items():
        setattr(user, key, value)
    session.add(user)
    await session.flush()
    return user


async def delete(session: AsyncSession, user: User) -> None:
    # An ORM delete, not a bulk one, so that app/auth/cache.py sees it. User declares
    # no relationship to Item, so the ORM issues no UPDATE nulling owner_id first: the
    # database's ON DELETE CASCADE removes the items.
    await session.delete(user)
    await session.flush()
