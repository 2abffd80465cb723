"""Superusers made by operators: the first one at start-up (FIRST_SUPERUSER_*) and the
command line's `create-superuser` (app/ops)."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import repository
from app.auth.passwords import hash_password
from app.models import User


async def create_superuser(session: AsyncSession, *, email: str, username: str, password: str) -> User:
    """A verified superuser. The caller has checked that neither name is taken and decided
    what a password failing the policy means (a warning at start-up, a refusal otherwise)."""
    user = User(
        email=email,
        username=username,
        hashed_password=await hash_password(password),
        is_superuser=True,
        is_verified=True,
    )
    return await repository.add(session, user)
