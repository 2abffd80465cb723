from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


class User(Base):
    """The columns fastapi-users' SQLAlchemy adapter expects, plus `username`, `created_at` and
    `mfa_methods`.

    Uniqueness is enforced on lower(email) and lower(username) by the database, so
    case variants and concurrent registrations end in one row and a 409, never a 500.
    """

    __tablename__ = "user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    username: Mapped[str] = mapped_column(String(50), nullable=False)
    hashed_password: Mapped[str] = mapped_column(String(1024), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    is_verified: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # The second-factor methods the user can use now (API.md section 9: "totp", "webauthn",
    # "recovery_code"), space-separated; kept in the same transaction as the factors' own
    # rows (app/auth/mfa/factors.py), so that the session snapshot (principal.py) carries
    # them and no request asks the database whether its user has a second factor.
    mfa_methods: Mapped[str] = mapped_column(String(64), default="", server_default="", nullable=False)

    __table_args__ = (
        Index("uq_user_email_lower", func.lower(email), unique=True),
        Index("uq_user_username_lower", func.lower(username), unique=True),
    )
