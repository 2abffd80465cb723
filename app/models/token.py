"""Personal access tokens (API.md section 11): what a script presents as `Authorization:
Bearer`. The table holds the SHA-256 of each token, never the token (a 256-bit random
value: a plain hash is enough, there is nothing to guess, and a slow hash would cost
every request). Revoking a token deletes its row; the security log keeps the history.
"""

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


class AccessToken(Base):
    __tablename__ = "access_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True, nullable=False
    )
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    scopes: Mapped[str] = mapped_column(String(200), nullable=False)  # space-separated
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # Written at most once a minute per token (app/auth/tokens/service.py), off the request.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
