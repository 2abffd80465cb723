"""Single-use tokens carried by mail (API.md sections 4 and 10): the "this wasn't me" link of
a `new_device_login` notice and the confirmation link of an email change.

The mail holds the token; the table holds its SHA-256 (app/models/account.py). A token is
spent by one conditional UPDATE, so two clicks, or two workers, spend it once.
"""

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.account import repository
from app.db import utcnow
from app.models.account import AccountToken

REPORT_LOGIN = "report_login"
EMAIL_CHANGE = "email_change"
LIFETIMES = {REPORT_LOGIN: timedelta(days=7), EMAIL_CHANGE: timedelta(hours=24)}
# Longer than anything we mint (43 characters): a longer value is refused unread.
MAX_TOKEN_LENGTH = 128


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue(
    session: AsyncSession, user_id: int, purpose: str, data: dict[str, Any], *, only_latest: bool = False
) -> str:
    """A new token in the caller's unit of work; with `only_latest`, the user's unspent
    tokens of this purpose stop working (an email change: only the latest request counts)."""
    if only_latest:
        await repository.drop_unspent_tokens(session, user_id, purpose)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        AccountToken(
            user_id=user_id,
            purpose=purpose,
            token_hash=digest(token),
            data=data,
            created_at=now,
            expires_at=now + LIFETIMES[purpose],
        )
    )
    await session.flush()
    return token


async def spend(session: AsyncSession, token: str, purpose: str) -> tuple[int, dict[str, Any]] | None:
    """(user id, data) of a valid unspent token of `purpose`, now spent; None for an unknown,
    used, expired or foreign-purpose one."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return await repository.spend_token(session, digest(token), purpose, utcnow())
