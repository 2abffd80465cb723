"""The mail senders live in app/mail (the outbox sends every mail); their names are kept
here for callers of this module. And `run_in_background`, for work a request must not
wait for (the reset mail: a known email must answer as fast as an unknown one)."""

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from app.mail.senders import LogMailSender, MailSender, SmtpMailSender, create_mail_sender

__all__ = ["LogMailSender", "MailSender", "SmtpMailSender", "create_mail_sender", "run_in_background"]

logger = logging.getLogger("app.mail")

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
        # Type only: a traceback's frames, or a database error's message, may hold the body.
        logger.error("background mail job failed: %s", type(exc).__name__)
