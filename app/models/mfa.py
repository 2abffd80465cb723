"""Second factors (API.md section 9): a TOTP secret, recovery codes, passkeys.

Every row goes with its user (ON DELETE CASCADE). Nothing here is usable as stored: the
TOTP secret is encrypted (app/auth/mfa/crypto.py), recovery codes are keyed hashes, and a
passkey's public key only verifies.
"""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


class TotpSecret(Base):
    """One per user: pending until `confirmed_at`, then the user's TOTP. `last_step` is the
    last time step accepted: a code is accepted only for a later step (RFC 6238 5.2), by one
    conditional UPDATE, so a replay fails whichever worker it reaches."""

    __tablename__ = "totp_secret"

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(255), nullable=False)  # "<key id>:<nonce+ciphertext>"
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_step: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class RecoveryCode(Base):
    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True, nullable=False
    )
    code_hash: Mapped[str] = mapped_column(String(64), nullable=False)  # HMAC-SHA256, hex
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Passkey(Base):
    """A WebAuthn credential. `credential_id` is unique across users: the authenticator
    names it, and a discoverable login finds its user by it alone."""

    __tablename__ = "passkey"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True, nullable=False
    )
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), nullable=False)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(2048), nullable=False)  # COSE
    sign_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    transports: Mapped[str] = mapped_column(String(255), default="", nullable=False)  # space-separated
    user_handle: Mapped[bytes] = mapped_column(LargeBinary(64), nullable=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("uq_passkey_credential_id", credential_id, unique=True),)
