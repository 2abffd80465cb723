"""The durable mail outbox (API.md section 10, app/mail): a mail is a row written in the
transaction of the change that causes it, sent after the commit by the service's own
sender, with retries, and never lost to an SMTP outage.

Everything is real: PostgreSQL (a database of these tests' own, see conftest.py), Redis,
the app over ASGI, aiosmtplib and an aiosmtpd server read as a mailbox sees it. Waits poll
with a generous deadline; nothing asserts how long anything took.
"""

import asyncio
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.db import SESSIONMAKER, create_engine, create_sessionmaker, transaction, utcnow
from app.mail import Outbox, enqueue_mail, repository
from app.metrics import METRICS, Metrics
from app.state import state_of
from tests.fixtures.client import API, Account, ApiClient, login, register, unique
from tests.fixtures.server import free_port
from tests.fixtures.smtp import Inbox
from tests.mail.conftest import SMTP_FROM, MailApps, smtp_on

DEADLINE_SECONDS = 30.0
JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")
NEW_PASSWORD = "a-different-horse-battery-staple"
RESET = "password_reset_requested"
# Fast retries and polls, so that a test waits on the outbox's rounds, not its defaults.
FAST = {"mail_retry_seconds": 0.2, "mail_poll_seconds": 0.1}


async def until(
    check: Callable[[], Awaitable[Any] | Any], what: str, timeout: float = DEADLINE_SECONDS
) -> Any:
    """Poll `check` until it returns something truthy (returned), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        await asyncio.sleep(0.05)


async def rows(db: asyncpg.Connection, address: str, event: str | None = None) -> list[asyncpg.Record]:
    """The outbox rows to `address` (with `X-Security-Event: event` when given)."""
    records = await db.fetch(
        "SELECT id, attempts, last_error, sent_at, failed_at, body, subject,"
        " headers->>'X-Security-Event' AS event FROM mail_outbox WHERE to_address = $1 ORDER BY id",
        address,
    )
    return [r for r in records if event is None or r["event"] == event]


async def one_row(db: asyncpg.Connection, address: str, event: str) -> asyncpg.Record:
    found = await rows(db, address, event)
    assert len(found) == 1, found
    return found[0]


def sent(inbox: Inbox, address: str, event: str | None = None) -> list[Any]:
    return [m for m in inbox.to(address) if event is None or m["X-Security-Event"] == event]


async def forgot_password(client: ApiClient, email: str) -> None:
    response = await client.post(f"{API}/auth/forgot-password", json={"email": email})
    assert response.status_code == 202, response.text


async def change_password(client: ApiClient, account: Account) -> None:
    response = await client.patch(
        f"{API}/users/me", json={"password": NEW_PASSWORD, "current_password": account.password}
    )
    assert response.status_code == 200, response.text


def samples(text: str) -> dict[str, float]:
    """`name{labels}` (or `name`) → value, from a Prometheus text scrape."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


async def scrape(client: httpx.AsyncClient) -> dict[str, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return samples(response.text)


# 1. The ordinary path.


async def test_a_reset_request_sends_exactly_one_mail_and_marks_its_row_sent(
    mail_apps: MailApps, own_smtp, db
):
    inbox, port = own_smtp
    async with mail_apps.serving(port) as (_, make_client):
        client = make_client()
        account = await register(client)
        await forgot_password(client, account.email)

        message = await inbox.wait_for(account.email, event=RESET, timeout=DEADLINE_SECONDS)
        assert message["From"] == SMTP_FROM
        assert message["To"] == account.email
        assert JWT.search(message.get_content())
        row = await until(lambda: _sent_row(db, account.email, RESET), "the reset mail's row marked sent")
        assert row["attempts"] == 1
        assert row["last_error"] is None
        assert row["failed_at"] is None
        # One row, sent, is never claimed again: the one message is the only one.
        assert len(sent(inbox, account.email, RESET)) == 1


async def _sent_row(db: asyncpg.Connection, address: str, event: str) -> asyncpg.Record | None:
    found = await rows(db, address, event)
    assert len(found) <= 1, found  # the mail is queued once
    return found[0] if found and found[0]["sent_at"] is not None else None


# 2. An SMTP outage delays mail, never loses it.


async def test_mail_queued_during_an_smtp_outage_is_sent_once_the_server_is_back(mail_apps: MailApps, db):
    port = free_port()  # nothing listens here until the server "comes back"
    async with mail_apps.serving(port, mail_retry_seconds=1, mail_poll_seconds=0.2) as (_, make_client):
        client = make_client()
        account = await register(client)
        await login(client, account)  # a new-device notice, also queued during the outage
        await change_password(client, account)  # its notice is queued in the same transaction
        await forgot_password(make_client(), account.email)

        async def failing() -> list[asyncpg.Record] | None:
            found = await rows(db, account.email)
            events = {r["event"] for r in found}
            tried = all(r["attempts"] >= 1 and r["last_error"] for r in found)
            return found if {"password_changed", RESET} <= events and tried else None

        failed = await until(failing, "every mail tried and failed against the dead port")
        for row in failed:
            assert row["sent_at"] is None, row
            assert row["failed_at"] is None, row
            assert row["body"] not in row["last_error"]
            assert not JWT.search(row["last_error"]), row["last_error"]
            assert "Connect" in row["last_error"], row["last_error"]  # the cause, by type
        async with httpx.AsyncClient(transport=client._transport, base_url="https://testserver") as ops:
            assert (await scrape(ops))["mail_oldest_unsent_seconds"] > 0

        with smtp_on(port) as (inbox, _):

            async def all_sent() -> bool:
                return all(r["sent_at"] is not None for r in await rows(db, account.email))

            await until(all_sent, "every mail sent once the server is back")
            for event in ("password_changed", RESET):
                await inbox.wait_for(account.email, event=event, timeout=DEADLINE_SECONDS)
            # Nothing lost, nothing doubled: one message per row.
            assert len(sent(inbox, account.email)) == len(failed)
            assert sorted(m["X-Security-Event"] for m in sent(inbox, account.email)) == sorted(
                r["event"] for r in failed
            )


# 3. Several senders on one outbox: each mail exactly once.


async def _queue_batch(mail_apps: MailApps, addresses: list[str]) -> None:
    """`addresses`' mails in one committed unit of work, as a script would (no outbox in
    its sessionmaker: the senders find them by polling or draining)."""
    engine = create_engine(mail_apps.settings())
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            for address in addresses:
                enqueue_mail(session, to=address, subject=f"For {address}", body=f"Hello {address}")
    finally:
        await engine.dispose()


async def _senders(mail_apps: MailApps, port: int, count: int, **overrides: Any) -> list[tuple[Outbox, Any]]:
    """`count` outboxes, each with an engine and sessionmaker of its own."""
    senders = []
    for _ in range(count):
        settings = mail_apps.settings(port, **overrides)
        engine = create_engine(settings)
        senders.append((Outbox(settings, Metrics()), engine))
    return senders


async def _exactly_once(db: asyncpg.Connection, inbox: Inbox, addresses: list[str]) -> None:
    for address in addresses:
        assert len(inbox.to(address)) == 1, (address, len(inbox.to(address)))
    records = await db.fetch(
        "SELECT to_address, sent_at, attempts FROM mail_outbox WHERE to_address = ANY($1::text[])", addresses
    )
    assert len(records) == len(addresses)
    assert all(r["sent_at"] is not None and r["attempts"] == 1 for r in records), records


async def test_concurrent_drains_send_every_mail_exactly_once(mail_apps: MailApps, own_smtp, db):
    inbox, port = own_smtp
    tag = unique("drain")
    addresses = [f"{tag}-{n}@example.com" for n in range(30)]
    await _queue_batch(mail_apps, addresses)
    senders = await _senders(mail_apps, port, 3, mail_send=False)  # no task: drained by hand
    try:
        for outbox, engine in senders:
            outbox.start(create_sessionmaker(engine))
        counts = await asyncio.gather(*(outbox.drain() for outbox, _ in senders))
        # Each drain counts what it sent: together exactly the batch, none twice.
        assert sum(counts) == len(addresses), counts
        await _exactly_once(db, inbox, addresses)
        assert sum(outbox.metrics.mail_sent._value.get() for outbox, _ in senders) == len(addresses)
    finally:
        for outbox, engine in senders:
            await outbox.stop()
            await engine.dispose()


async def test_polling_senders_share_mail_queued_elsewhere_exactly_once(mail_apps: MailApps, own_smtp, db):
    inbox, port = own_smtp
    tag = unique("poll")
    addresses = [f"{tag}-{n}@example.com" for n in range(30)]
    senders = await _senders(mail_apps, port, 3, mail_poll_seconds=0.1)
    try:
        for outbox, engine in senders:
            outbox.start(create_sessionmaker(engine))
        await _queue_batch(mail_apps, addresses)  # while they run: found by their polls

        async def delivered() -> bool:
            return all(inbox.to(address) for address in addresses)

        await until(delivered, "every mail of the batch delivered")
        for outbox, _ in senders:
            await outbox.stop()  # no round in flight any more: any duplicate is in by now
        await _exactly_once(db, inbox, addresses)
    finally:
        for outbox, engine in senders:
            await outbox.stop()
            await engine.dispose()


# 4. A unit of work that rolls back queues nothing.


class Boom(Exception):
    pass


async def test_a_rolled_back_unit_of_work_queues_no_mail(mail_apps: MailApps, own_smtp, db):
    inbox, port = own_smtp
    rolled_back, committed = f"{unique('rb')}@example.com", f"{unique('ok')}@example.com"
    async with mail_apps.serving(port, **FAST) as (app, _):
        sessionmaker = state_of(app)[SESSIONMAKER]  # carries the app's outbox, as a request's does
        metrics_before = _queued(app)
        try:
            async with transaction(sessionmaker) as session:
                enqueue_mail(session, to=rolled_back, subject="Never", body="never sent")
                await session.flush()  # the row is written, then rolled back
                raise Boom
        except Boom:
            pass
        assert await rows(db, rolled_back) == []
        assert _queued(app) == metrics_before  # and no wake-up counted as queued mail

        # A mail committed after it goes out: the sender ran, and had nothing else to send.
        async with transaction(sessionmaker) as session:
            enqueue_mail(session, to=committed, subject="Sent", body="sent")
        await inbox.wait_for(committed, timeout=DEADLINE_SECONDS)
        await until(lambda: _all_sent(db, committed), "the committed mail's row marked sent")
        assert _queued(app) == metrics_before + 1
        assert inbox.to(rolled_back) == []
        assert await rows(db, rolled_back) == []


def _queued(app: Any) -> float:
    return float(state_of(app)[METRICS].mail_queued._value.get())


async def _all_sent(db: asyncpg.Connection, address: str) -> bool:
    found = await rows(db, address)
    return bool(found) and all(r["sent_at"] is not None for r in found)


# 5. Given up after MAIL_MAX_ATTEMPTS: kept, failed, logged at ERROR without the body.


async def test_a_mail_is_given_up_after_max_attempts_kept_and_logged_without_its_body(
    mail_apps: MailApps, db, caplog
):
    port = free_port()  # nothing ever listens
    async with mail_apps.serving(port, mail_max_attempts=3, **FAST) as (_, make_client):
        caplog.set_level(logging.DEBUG)
        client = make_client()
        account = await register(client)
        await forgot_password(client, account.email)

        async def given_up() -> asyncpg.Record | None:
            found = await rows(db, account.email, RESET)
            return found[0] if found and found[0]["failed_at"] is not None else None

        row = await until(given_up, "the reset mail given up")
        errors = await until(
            lambda: _records(caplog, logging.ERROR, "mail_given_up"), "the give-up logged at ERROR"
        )
    assert row["attempts"] == 3
    assert row["sent_at"] is None
    assert row["last_error"]
    assert len(errors) == 1
    assert str(row["id"]) in errors[0].getMessage()
    assert len(_records(caplog, logging.WARNING, "mail_attempt_failed", exact=True)) >= 2
    token = JWT.search(row["body"])
    assert token is not None
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "") + repr(getattr(record, "__dict__", {}))
        assert token.group() not in text, record
        assert row["body"] not in text, record
        assert row["subject"] not in record.getMessage() or record.name != "app.mail", record
    assert token.group() not in row["last_error"]
    # A failed mail is no longer "unsent": it does not hold the oldest-unsent age up forever.
    oldest = await db.fetchval(
        "SELECT min(created_at) FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL AND id = $1",
        row["id"],
    )
    assert oldest is None


def _records(caplog: Any, level: int, event: str, *, exact: bool = False) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "app.mail"
        and getattr(r, "event", None) == event
        and (r.levelno == level if exact else r.levelno >= level)
    ]


# 6. Metrics.


async def test_metrics_count_queued_and_sent_mail_and_show_the_oldest_unsent(
    mail_apps: MailApps, own_smtp, db
):
    inbox, port = own_smtp
    async with mail_apps.serving(port, **FAST) as (_, make_client):
        client = make_client()
        account = await register(client)
        await until(lambda: _all_sent_or_none(db, account.email), "registration's mail, if any, sent")
        # Registration's mail (if any) counted as sent as well as queued.
        before = await until(lambda: _settled(client), "the counters settled")

        await forgot_password(client, account.email)
        await inbox.wait_for(account.email, event=RESET, timeout=DEADLINE_SECONDS)
        after = await until(lambda: _grown(client, before), "mail_sent_total counted the reset mail")
        assert after["mail_queued_total"] == before["mail_queued_total"] + 1
        assert after["mail_sent_total"] == before["mail_sent_total"] + 1
        assert after['mail_failed_total{outcome="retry"}'] == 0
        assert after['mail_failed_total{outcome="given_up"}'] == 0
        assert after["mail_oldest_unsent_seconds"] >= 0


async def _all_sent_or_none(db: asyncpg.Connection, address: str) -> bool:
    return all(r["sent_at"] is not None for r in await rows(db, address))


async def _settled(client: ApiClient) -> dict[str, float] | None:
    values = await scrape(client)
    return values if values["mail_queued_total"] == values["mail_sent_total"] else None


async def _grown(client: ApiClient, before: dict[str, float]) -> dict[str, float] | None:
    values = await scrape(client)
    return values if values["mail_sent_total"] > before["mail_sent_total"] else None


# 7. No SMTP configured: the log sender, which shows the body in test and development.


async def test_without_smtp_a_queued_mail_goes_to_the_log_with_its_body(mail_apps: MailApps, db, caplog):
    async with mail_apps.serving(None, **FAST) as (_, make_client):  # no SMTP_HOST
        caplog.set_level(logging.INFO, logger="app.mail")
        client = make_client()
        account = await register(client)
        await forgot_password(client, account.email)
        row = await until(lambda: _sent_row(db, account.email, RESET), "the reset mail's row marked sent")

        def logged() -> list[str]:
            return [
                r.getMessage()
                for r in caplog.records
                if r.name == "app.mail" and f"mail to {account.email}" in r.getMessage()
            ]

        async def found() -> list[str]:
            return [m for m in logged() if RESET in m]

        lines = await until(found, "the reset mail in the log")
    assert len(lines) == 1
    token = JWT.search(row["body"])
    assert token is not None
    assert row["body"] in lines[0]  # the body, its link and token included
    assert f"X-Security-Event: {RESET}" in lines[0]
    assert row["attempts"] == 1
    assert row["last_error"] is None


# A sender that died holding a claim: its rows come back when the lease ends, and its
# late outcome changes nothing.


async def test_rows_of_a_dead_senders_expired_lease_are_sent_once_and_its_late_outcome_is_ignored(
    mail_apps: MailApps, own_smtp, db
):
    inbox, port = own_smtp
    tag = unique("lease")
    addresses = [f"{tag}-{n}@example.com" for n in range(3)]
    await _queue_batch(mail_apps, addresses)
    ((outbox, engine),) = await _senders(mail_apps, port, 1, mail_send=False)
    try:
        sessionmaker = create_sessionmaker(engine)
        outbox.start(sessionmaker)
        # The dead sender's claim, with a lease that has already ended.
        async with transaction(sessionmaker) as session:
            now = utcnow()
            dead = await repository.claim_due(session, now=now, lease_until=now, limit=1000)
        dead = [claim for claim in dead if claim.to_address in addresses]
        assert len(dead) == len(addresses)

        assert await outbox.drain() >= len(addresses)
        for address in addresses:
            assert len(inbox.to(address)) == 1
        async with transaction(sessionmaker) as session:
            late = [
                await repository.mark_failed(session, c, "late", retry_at=utcnow(), now=utcnow())
                for c in dead
            ]
        assert late == [False] * len(addresses)
        records = await db.fetch(
            "SELECT sent_at, attempts, last_error FROM mail_outbox WHERE to_address = ANY($1::text[])",
            addresses,
        )
        assert all(
            r["sent_at"] is not None and r["attempts"] == 2 and r["last_error"] is None for r in records
        )
    finally:
        await outbox.stop()
        await engine.dispose()
