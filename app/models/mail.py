"""The mail outbox (API.md section 10): every mail, written in the transaction of the
change that causes it and sent after the commit by the service's own sender (app/mail).

A row's life: queued (`send_after` due) → claimed (a sender moved `send_after` to the end
of its lease and counted the attempt) → sent (`sent_at`), or back to queued with a later
`send_after` after a failed attempt, or failed (`failed_at`) after the last one. A sender
that dies mid-send gives its rows back when the lease ends. `body` is kept because the mail
must survive an outage; it holds no secret but the mail's own single-use token.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow

LAST_ERROR_LENGTH = 255


class MailOutbox(Base):
    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    to_address: Mapped[str] = mapped_column(String(320), nullable=False)
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # The next attempt's earliest time; while a sender holds the row, the end of its lease.
    send_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # Counted when a sender claims the row, so the count also names the claim: a sender
    # records its outcome only while the row still carries its own count.
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # The exception's type and the server's reply, never the mail.
    last_error: Mapped[str | None] = mapped_column(String(LAST_ERROR_LENGTH), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    # The due rows (sent_at IS NULL, by send_after) and the purge of old sent ones.
    __table_args__ = (Index("ix_mail_outbox_sent_at_send_after", sent_at, send_after),)
