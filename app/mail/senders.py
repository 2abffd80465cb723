"""How one mail leaves: a small interface a deployment can replace, and the two senders we
ship. The outbox (outbox.py) calls them; nothing else sends.

Mails carry password-reset and verification tokens, so what reaches a log matters:
`LogMailSender` writes the body (token included) only in development and test, where
reading the link off the console is the point; elsewhere it logs that a mail went out.
"""

import logging
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from app.config import Settings

logger = logging.getLogger("app.mail")

# Where a mail's body, and so its token, may appear in a log line.
BODY_LOGGED_IN = frozenset({"development", "test"})
# Connecting, and each command's reply: a server that stops answering costs one mail this
# long, then its retry is scheduled (the outbox's lease allows for a batch of these).
SMTP_TIMEOUT_SECONDS = 10

Headers = Mapping[str, str] | None


class MailSender(Protocol):
    async def send(self, to: str, subject: str, body: str, headers: Headers = None) -> None:
        """Deliver, or raise. `headers`: extra ones, such as X-Security-Event on a security
        notice (API.md section 10)."""
        ...


class LogMailSender:
    """No SMTP configured (the embedded default, development, test): the mail goes to the
    log instead of a mailbox."""

    def __init__(self, environment: str) -> None:
        self.show_body = environment in BODY_LOGGED_IN

    async def send(self, to: str, subject: str, body: str, headers: Headers = None) -> None:
        extra = "".join(f"\n{name}: {value}" for name, value in (headers or {}).items())
        if self.show_body:
            logger.info("mail to %s: %s%s\n%s", to, subject, extra, body)
        else:
            logger.info("mail to %s: %s%s (body not logged outside development)", to, subject, extra)


class SmtpMailSender:
    """aiosmtplib: SMTP on the event loop, one connection per mail, every step bounded by
    SMTP_TIMEOUT_SECONDS."""

    def __init__(
        self,
        host: str,
        *,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls

    def message(self, to: str, subject: str, body: str, headers: Headers = None) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(body)
        return message

    async def send(self, to: str, subject: str, body: str, headers: Headers = None) -> None:
        await aiosmtplib.send(
            self.message(to, subject, body, headers),
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password if self.username else None,
            # False, not None: None would upgrade whenever the server offers STARTTLS,
            # and SMTP_STARTTLS=false means a local relay that is spoken to in plain text.
            start_tls=self.starttls,
            tls_context=ssl.create_default_context() if self.starttls else None,
            timeout=SMTP_TIMEOUT_SECONDS,
        )


def create_mail_sender(settings: Settings) -> MailSender:
    if not (settings.smtp_host and settings.smtp_from):  # Settings refuses a host without a sender
        return LogMailSender(settings.environment)
    return SmtpMailSender(
        settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
    )
