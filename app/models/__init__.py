"""Every table, imported once here so that Alembic sees the whole metadata."""

from app.models.account import AccountToken, KnownDevice
from app.models.identity import OidcIdentity
from app.models.item import Item
from app.models.mail import MailOutbox
from app.models.mfa import Passkey, RecoveryCode, TotpSecret
from app.models.security_event import SecurityLogEntry
from app.models.token import AccessToken
from app.models.user import User

__all__ = [
    "AccessToken",
    "AccountToken",
    "Item",
    "KnownDevice",
    "MailOutbox",
    "OidcIdentity",
    "Passkey",
    "RecoveryCode",
    "SecurityLogEntry",
    "TotpSecret",
    "User",
]
