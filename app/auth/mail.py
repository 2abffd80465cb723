"""Outgoing mail: a small interface a deployment can replace, and the two senders we ship.

Mails carry password-reset and verification tokens, so what reaches a log matters:
`LogMailSender` writes the body (token included) only in development and test, where
reading the link off the console is the point; elsewhere it logs that a mail went out.
"""

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Coroutine, Mapping
from email.message import EmailMessage
from typing import Any, Protocol

import anyio.to_thread

from app.config import Settings
from app.state import Key

logger = logging.getLogger("app.mail")

# Where a mail's body, and so its token, may appear in a log line.
BODY_LOGGED_IN = frozenset({"development", "test"})
SMTP_TIMEOUT_SECONDS = 10


Headers = Mapping[str, str] | None


class MailSender(Protocol):
    async def send(self, to: str, subject: str, body: str, headers: Headers = None) -> None:
        """`headers`: extra ones, such as X-Security-Event on a security notice (API.md section 10)."""
        ...


class LogMailSender:
    """Development and test: the mail goes to the log instead of a mailbox."""

    def __init__(self, environment: str) -> None:
        self.show_body = environment in BODY_LOGGED_IN

    async def send(self, to: str, subject: str, body: str, headers: Headers = None) -> None:
        extra = "".join(f"\n{name}: {value}" for name, value in (headers or {}).items())
        if self.show_body:
            logger.info("mail to %s: %s%s\n%s", to, subject, extra, body)
        else:
            logger.info("mail to %s: %s%s (body not logged outside development)", to, subject, extra)


class SmtpMailSender:
    """The standard library's smtplib, in a thread: it blocks, and a slow server must not stall the loop."""

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

    async def send(self, to: str, subject: str, body: str, headers: Headers = None) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(body)
        await anyio.to_thread.run_sync(self._deliver, message)

    def _deliver(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


MAIL: Key[MailSender] = Key("mail_sender")


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


# The event loop keeps only weak references to tasks: these are held until done.
_background: set[asyncio.Task[None]] = set()


def run_in_background(job: Coroutine[Any, Any, None]) -> None:
    """Run `job` without making the caller wait; a failure is logged, never raised."""
    task = asyncio.create_task(_logged(job))
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _logged(job: Coroutine[Any, Any, None]) -> None:
    try:
        await job
    except Exception as exc:
        # Type and message only (smtplib's carry the server's reply): a traceback's frames
        # hold the body, token included, for any handler or error tracker that records locals.
        logger.error("background mail job failed: %s: %s", type(exc).__name__, exc)


def send_in_background(sender: MailSender, to: str, subject: str, body: str, headers: Headers = None) -> None:
    run_in_background(sender.send(to, subject, body, headers))
