"""The security log (API.md section 10): one row per security event of an account.

`user_id` is SET NULL when the account goes, so that its `account_deleted` record (and the
rest of its history, for the retention period) survives without pointing at anyone; the
row never holds the email. `details` carries identifiers and counts only, never a
password, token or code.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow

EVENT_MAX = 64
IP_MAX = 64
USER_AGENT_MAX = 256


class SecurityLogEntry(Base):
    """Indexes: the newest-first page of one user is a backward scan of (user_id,
    created_at, id) (a B-tree reads as well backwards as forwards, so DESC columns would
    add nothing); `created_at` alone serves the retention's batched deletes."""

    __tablename__ = "security_event"

    # SQLite makes only an INTEGER PRIMARY KEY its autoincrementing rowid.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), nullable=True)
    event: Mapped[str] = mapped_column(String(EVENT_MAX), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    ip: Mapped[str | None] = mapped_column(String(IP_MAX), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_MAX), nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (
        Index("ix_security_event_user_id_created_at_id", user_id, created_at, id),
        Index("ix_security_event_created_at", created_at),
    )
