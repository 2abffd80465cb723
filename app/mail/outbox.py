"""The durable mail queue (API.md section 10): `enqueue_mail` in the transaction of the
change, and the `Outbox`, this process's sender, after the commit.

A mail is a row of `mail_outbox` written by the caller's unit of work: it exists exactly
when the change that causes it committed, and an SMTP outage only delays it. The sender
is an asyncio task of the lifespan. The commit of a unit of work that queued mail wakes
it; it also polls every MAIL_POLL_SECONDS, for mail queued by another replica or a
command-line run. Each round it claims a batch (repository.py: a committed claim with a
lease, rows locked with SKIP LOCKED, so that several workers and replicas never take the
same row), sends each, and records the outcome: sent, retried later (MAIL_RETRY_SECONDS,
doubling, at most an hour apart), or given up after MAIL_MAX_ATTEMPTS (kept, logged at
ERROR). A sender that dies mid-batch gives its rows back when the lease ends. The only
duplicate left is the one SMTP itself allows: a server that accepted a mail whose sender
died before recording it gets it again after the lease (at least once, never lost).

Mail bodies hold single-use tokens: nothing here logs a body, a subject line, or a
traceback (whose frames hold the body); the log sender has its own rule (senders.py).
"""

import asyncio
import logging
import time
from collections.abc import Mapping
from contextlib import suppress
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import after_commit, transaction, utcnow
from app.mail import repository
from app.mail.repository import Claimed
from app.mail.senders import SMTP_TIMEOUT_SECONDS, MailSender, create_mail_sender
from app.metrics import Metrics
from app.models.mail import MailOutbox
from app.state import Key

logger = logging.getLogger("app.mail")

# The session info key the lifespan's sessionmaker carries this process's outbox under.
OUTBOX_INFO = "mail_outbox"
_QUEUED = "mail_outbox_queued"
BATCH_SIZE = 10
# Longer than a batch of sends that each time out: a live sender's rows never go back.
LEASE = timedelta(seconds=3 * BATCH_SIZE * SMTP_TIMEOUT_SECONDS)
MAX_RETRY_SECONDS = 3600
KEEP_SENT = timedelta(days=7)
PURGE_EVERY_SECONDS = 3600


def enqueue_mail(
    session: AsyncSession, *, to: str, subject: str, body: str, headers: Mapping[str, str] | None = None
) -> None:
    """Queue a mail in `session`'s unit of work: it is sent once that commits, never if it
    rolls back. No commit here."""
    repository.add(
        session, MailOutbox(to_address=to, subject=subject, body=body, headers=dict(headers or {}))
    )
    outbox: Outbox | None = session.info.get(OUTBOX_INFO)
    if outbox is None:  # a script's sessionmaker: a running service's poll sends it
        return
    queued = session.info.get(_QUEUED, 0)
    session.info[_QUEUED] = queued + 1
    if queued == 0:

        async def committed() -> None:
            outbox.queued(session.info.pop(_QUEUED, 0))

        after_commit(session, committed)


class Outbox:
    """This process's sender. `start` in the lifespan, `stop` at its end; `drain` sends
    everything due now (the task calls it; so may a test)."""

    def __init__(self, settings: Settings, metrics: Metrics, sender: MailSender | None = None) -> None:
        self.sender = sender or create_mail_sender(settings)
        self.metrics = metrics
        self.sends = settings.mail_send
        self.max_attempts = settings.mail_max_attempts
        self.retry_seconds = settings.mail_retry_seconds
        self.poll_seconds = settings.mail_poll_seconds
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._purged_at = 0.0

    def start(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self.metrics.before_scrape.append(self.observe)
        if self.sends:
            self._task = asyncio.create_task(self._run(), name="mail-outbox")

    async def stop(self) -> None:
        """Finish the mail being sent (within the SMTP timeout), give back the rest."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, SMTP_TIMEOUT_SECONDS + 1)

    def queued(self, count: int) -> None:
        """`count` mails were committed to the outbox by this process: send them now."""
        self.metrics.mail_queued.inc(count)
        self._wake.set()

    def retry_delay(self, attempts: int) -> float:
        return float(min(self.retry_seconds * 2 ** (attempts - 1), MAX_RETRY_SECONDS))

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        if self._sessionmaker is None:
            raise RuntimeError("the outbox is not started")
        return self._sessionmaker

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.drain()
                await self._purge()
            except Exception as exc:  # the database is down: the next round tries again
                logger.warning(
                    "mail outbox round failed: %s", type(exc).__name__, extra={"event": "mail_outbox_failed"}
                )
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def drain(self) -> int:
        """Send what is due until nothing is; the number of mails sent."""
        sent = 0
        while not self._stopping:
            async with transaction(self.sessionmaker) as session:
                now = utcnow()
                batch = await repository.claim_due(
                    session, now=now, lease_until=now + LEASE, limit=BATCH_SIZE
                )
            if not batch:
                break
            for index, claim in enumerate(batch):
                if self._stopping:
                    async with transaction(self.sessionmaker) as session:
                        await repository.release(session, batch[index:], utcnow())
                    break
                sent += await self._attempt(claim)
        return sent

    async def _attempt(self, claim: Claimed) -> int:
        try:
            await self.sender.send(claim.to_address, claim.subject, claim.body, claim.headers)
        except Exception as exc:
            # Type and message only (aiosmtplib's carry the server's reply), no traceback.
            await self._failed(claim, f"{type(exc).__name__}: {exc}")
            return 0
        async with transaction(self.sessionmaker) as session:
            recorded = await repository.mark_sent(session, claim, utcnow())
        self.metrics.mail_sent.inc()
        if not recorded:
            logger.warning(
                "mail %d sent after its lease ended: it may be sent twice",
                claim.id,
                extra={"event": "mail_sent_late"},
            )
        return 1

    async def _failed(self, claim: Claimed, error: str) -> None:
        give_up = claim.attempts >= self.max_attempts
        now = utcnow()
        retry_at = None if give_up else now + timedelta(seconds=self.retry_delay(claim.attempts))
        async with transaction(self.sessionmaker) as session:
            await repository.mark_failed(session, claim, error, retry_at=retry_at, now=now)
        self.metrics.mail_failed.labels("given_up" if give_up else "retry").inc()
        if give_up:
            logger.error(
                "mail %d given up after %d attempts: %s",
                claim.id,
                claim.attempts,
                error,
                extra={"event": "mail_given_up"},
            )
        else:
            logger.warning(
                "mail %d attempt %d failed, retried in %.0f s: %s",
                claim.id,
                claim.attempts,
                self.retry_delay(claim.attempts),
                error,
                extra={"event": "mail_attempt_failed"},
            )

    async def _purge(self) -> None:
        if time.monotonic() - self._purged_at < PURGE_EVERY_SECONDS:
            return
        async with transaction(self.sessionmaker) as session:
            await repository.purge_sent(session, utcnow() - KEEP_SENT)
        self._purged_at = time.monotonic()

    async def observe(self, metrics: Metrics) -> None:
        """Before a scrape: the age of the oldest mail not sent yet (the whole outbox's,
        whichever replica answers)."""
        async with transaction(self.sessionmaker) as session:
            oldest = await repository.oldest_unsent(session)
        age = 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
        metrics.mail_oldest_unsent.set(age)


OUTBOX: Key[Outbox] = Key("mail_outbox")
