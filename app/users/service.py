from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.sessions import SessionUser
from app.errors import AppError, ErrorCode
from app.models import User
from app.users import repository

MAX_ID = 2**31 - 1  # the column is a 32-bit integer; larger ids cannot exist


async def get_profile(session: AsyncSession, user_id: int, viewer: SessionUser | None) -> tuple[User, bool]:
    """The user and whether `viewer` may see the full record (itself or an admin)."""
    user = await repository.get(session, user_id) if 1 <= user_id <= MAX_ID else None
    if user is None:
        raise AppError(ErrorCode.NOT_FOUND, "User not found.")
    full = viewer is not None and (viewer.id == user.id or viewer.is_superuser)
    return user, full
