"""Identities at OpenID Connect providers (API.md section 11): who a provider says a user
is. `(provider, subject)` names one identity for good (OpenID Connect Core 5.7: `sub` is
unique and never reassigned within an issuer); the email is only what the provider said
when the identity was linked, for the user to recognise it, never used to find a user.

Goes with its user (ON DELETE CASCADE). Holds no secret: no provider token is kept.
"""

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow

PROVIDER_MAX = 64
SUBJECT_MAX = 255  # OpenID Connect Core 2: "MUST NOT exceed 255 ASCII characters"


class OidcIdentity(Base):
    __tablename__ = "oidc_identity"
    __table_args__ = (UniqueConstraint("provider", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(PROVIDER_MAX), nullable=False)
    subject: Mapped[str] = mapped_column(String(SUBJECT_MAX), nullable=False)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True, nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
