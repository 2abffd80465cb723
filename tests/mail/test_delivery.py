"""API.md section 10: mail is never lost to an SMTP outage, and is sent once with several
senders draining one outbox. Real PostgreSQL, the outbox's real sender, a real SMTP
server (aiosmtpd) — started late, on the port the app was told, for the outage."""

import asyncio
import time
import uuid

import anyio.to_thread
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from app.db import SESSIONMAKER, create_engine, create_sessionmaker, transaction
from app.mail import OUTBOX, Outbox, enqueue_mail
from app.main import create_app
from app.metrics import Metrics
from app.models import MailOutbox
from app.ops.bootstrap import migrate
from app.state import state_of
from tests.conftest import (
    TEST_DATABASE,
    client_factory,
    drop_database,
    make_settings,
    recreate_database,
    serving,
)
from tests.fixtures.client import API, login, register, unique
from tests.fixtures.server import free_port
from tests.fixtures.smtp import Inbox, smtp_server
from tests.ops.test_metrics import scrape, value

DEADLINE_SECONDS = 15


async def rows_to(app, address: str) -> list[MailOutbox]:
    async with state_of(app)[SESSIONMAKER]() as session:
        return list(await session.scalars(select(MailOutbox).where(MailOutbox.to_address == address)))


async def eventually(check, what: str):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {DEADLINE_SECONDS} s: {what}"
        await asyncio.sleep(0.05)


async def test_an_smtp_outage_delays_mail_and_loses_none(database_url, redis_prefix):
    port = free_port()  # nothing listens here yet: the SMTP server is down
    settings = make_settings(
        database_url,
        f"{redis_prefix}outage:",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_from="security@example.com",
        smtp_starttls=False,
        mail_retry_seconds=0.5,
        mail_poll_seconds=0.2,
    )
    async with serving(create_app(settings)) as app, client_factory(app)() as client:
        account = await register(client)
        await login(client, account)  # queues new_device_login: a notice in the login's transaction
        changed = await client.patch(
            f"{API}/users/me",
            json={"password": "another-horse-battery", "current_password": account.password},
        )
        assert changed.status_code == 200, changed.text  # the outage does not reach the request

        async def failed_once():
            rows = await rows_to(app, account.email)
            return rows if len(rows) == 2 and all(r.last_error and r.sent_at is None for r in rows) else None

        for row in await eventually(failed_once, "both mails tried and failed, with the reason"):
            assert row.attempts >= 1
            assert row.body not in row.last_error

        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()  # the SMTP server comes back
        try:
            await inbox.wait_for(account.email, event="password_changed", timeout=DEADLINE_SECONDS)
            await inbox.wait_for(account.email, event="new_device_login", timeout=DEADLINE_SECONDS)

            async def all_sent():
                rows = await rows_to(app, account.email)
                return all(r.sent_at is not None for r in rows)

            await eventually(all_sent, "the rows marked sent")
            assert len(inbox.to(account.email)) == 2  # each once
        finally:
            controller.stop()


@pytest.fixture(scope="module")
async def lone_database(redis_prefix):
    """A database no running app sends from: only this test's senders drain its outbox."""
    name = f"{TEST_DATABASE}_outbox"
    url = await recreate_database(name)
    await anyio.to_thread.run_sync(migrate, make_settings(url, f"{redis_prefix}outbox:"))
    yield url
    await drop_database(name)


async def test_several_senders_send_each_mail_exactly_once(lone_database, redis_prefix):
    tag = uuid.uuid4().hex[:8]
    addresses = [f"once-{tag}-{n}@example.com" for n in range(30)]
    with smtp_server() as (inbox, port):
        settings = make_settings(
            lone_database,
            f"{redis_prefix}outbox:",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_from="security@example.com",
            smtp_starttls=False,
        )
        engines = [create_engine(settings) for _ in range(3)]
        try:
            async with transaction(create_sessionmaker(engines[0])) as session:
                for address in addresses:
                    enqueue_mail(session, to=address, subject="once", body=f"for {address}")
            outboxes = []
            for engine in engines:  # three workers (or replicas), each with its own pool
                outbox = Outbox(settings, Metrics())
                outbox.start(create_sessionmaker(engine))
                outboxes.append(outbox)
            try:

                async def all_received():
                    return len([m for m in inbox.messages if m["To"] in addresses]) >= len(addresses)

                await eventually(all_received, "every mail received")
                await asyncio.sleep(0.5)  # time for a duplicate, were there one
            finally:
                for outbox in outboxes:
                    await outbox.stop()
            async with create_sessionmaker(engines[0])() as session:
                rows = list(
                    await session.scalars(select(MailOutbox).where(MailOutbox.to_address.in_(addresses)))
                )
        finally:
            for engine in engines:
                await engine.dispose()
        received = [m["To"] for m in inbox.messages if m["To"] in addresses]
    assert sorted(received) == sorted(addresses)  # every one, none twice
    assert len(rows) == len(addresses)
    assert all(row.sent_at is not None and row.attempts == 1 for row in rows)


async def test_a_change_that_rolls_back_queues_no_mail(app):
    address = f"{unique('rollback')}@example.com"

    async def failing_change() -> None:
        async with transaction(state_of(app)[SESSIONMAKER]) as session:
            enqueue_mail(session, to=address, subject="never", body="never")
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await failing_change()
    assert await rows_to(app, address) == []


async def test_the_outbox_is_started_with_the_service(app):
    assert isinstance(state_of(app)[OUTBOX], Outbox)


async def test_the_metrics_count_queued_and_sent_mail_and_the_oldest_unsent_age(mail_client, inbox):
    client = mail_client()
    before = await scrape(client)
    account = await register(client)
    await login(client, account)  # one notice: new_device_login
    await inbox.wait_for(account.email, event="new_device_login")

    async def counted():
        after = await scrape(client)
        sent = value(after, "mail_sent_total") - value(before, "mail_sent_total")
        queued = value(after, "mail_queued_total") - value(before, "mail_queued_total")
        return after if sent >= 1 and queued >= 1 else None

    after = await eventually(counted, "mail_queued_total and mail_sent_total counted")
    assert ("mail_oldest_unsent_seconds", frozenset()) in after
