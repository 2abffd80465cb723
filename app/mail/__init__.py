"""Outgoing mail (API.md section 10): queued in the outbox table in the transaction of the
change that causes it (`enqueue_mail`), and sent after the commit, with retries, by the
outbox's sender running inside the service (`outbox.py`) through SMTP or the log
(`senders.py`)."""

from app.mail.outbox import OUTBOX, Outbox, enqueue_mail

__all__ = ["OUTBOX", "Outbox", "enqueue_mail"]
