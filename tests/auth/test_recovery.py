"""API.md section 3: forgot-password, reset-password, request-verify-token and verify.

Every mail goes the real way: the outbox, aiosmtplib, and the tests' own SMTP server
(aiosmtpd, tests/fixtures/smtp.py), read as a mailbox sees it. Everything else is the
real PostgreSQL and Redis.
"""

import asyncio
import logging
import re
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from app.auth.mail import LogMailSender, SmtpMailSender, create_mail_sender
from app.db import SESSIONMAKER
from app.mail import OUTBOX
from app.main import create_app
from app.models import User
from app.state import state_of
from tests.conftest import client_factory, make_settings, running
from tests.fixtures.client import API, PASSWORD, Account, ApiClient, login, register, unique
from tests.fixtures.smtp import Inbox, smtp_server

MAIL_WAIT_SECONDS = 10.0
# Long enough for a mail that was (wrongly) queued to have arrived: it costs one hash.
NO_MAIL_WAIT_SECONDS = 0.5
JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")
NEW_PASSWORD = "a-different-horse-battery-staple"
# The mails of these routes (API.md section 10), among the notices the same address gets.
RECOVERY_EVENTS = {"password_reset_requested", "verification_requested"}


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str
    event: str

    @property
    def token(self) -> str:
        match = JWT.search(self.body)
        assert match is not None, self.body
        return match.group()


class Mailbox:
    """The recovery mails the SMTP server received, per address."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def to(self, address: str) -> list[Mail]:
        return [
            Mail(m["To"], m["Subject"], m.get_content(), m["X-Security-Event"])
            for m in self.inbox.to(address)
            if m["X-Security-Event"] in RECOVERY_EVENTS
        ]

    async def wait_for(self, address: str) -> Mail:
        """The first recovery mail to `address`: queued in the background, sent by the outbox."""
        deadline = time.monotonic() + MAIL_WAIT_SECONDS
        while not self.to(address):
            assert time.monotonic() < deadline, f"no mail to {address} within {MAIL_WAIT_SECONDS} s"
            await asyncio.sleep(0.02)
        return self.to(address)[0]


@pytest.fixture
def app(mail_app: FastAPI) -> FastAPI:
    """The shared app whose mail reaches the tests' SMTP server (tests/conftest.py)."""
    return mail_app


@pytest.fixture
def mailbox(inbox: Inbox) -> Mailbox:
    return Mailbox(inbox)


async def forgot(client: ApiClient, email: str, **kwargs: object):
    return await client.post(f"{API}/auth/forgot-password", json={"email": email}, **kwargs)


async def reset(client: ApiClient, token: str, password: str = NEW_PASSWORD):
    return await client.post(f"{API}/auth/reset-password", json={"token": token, "password": password})


async def reset_token(client: ApiClient, mailbox: Mailbox, account: Account) -> str:
    assert (await forgot(client, account.email)).status_code == 202
    return (await mailbox.wait_for(account.email)).token


async def deactivate(app: FastAPI, account: Account) -> None:
    async with state_of(app)[SESSIONMAKER]() as session:
        row = await session.get(User, account.id)
        assert row is not None
        row.is_active = False
        await session.commit()


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]["code"]


# forgot-password


async def test_forgot_password_answers_alike_for_known_unknown_and_inactive_emails(app, client, mailbox):
    known = await register(client)
    inactive = await register(client)
    await deactivate(app, inactive)

    unknown = f"{unique()}@example.com"
    answers = [
        await forgot(client, unknown),
        await forgot(client, inactive.email),
        await forgot(client, known.email),
    ]
    for response in answers:
        assert response.status_code == 202
        assert response.content == answers[0].content
        assert response.headers["content-type"] == answers[0].headers["content-type"]

    mail = await mailbox.wait_for(known.email)
    assert mail.subject == "Reset your password"
    assert mail.event == "password_reset_requested"
    await asyncio.sleep(NO_MAIL_WAIT_SECONDS)
    assert mailbox.to(unknown) == []
    assert mailbox.to(inactive.email) == []
    assert len(mailbox.to(known.email)) == 1


async def test_forgot_password_finds_the_email_whatever_its_case(client, mailbox):
    account = await register(client)
    assert (await forgot(client, account.email.upper())).status_code == 202
    assert (await mailbox.wait_for(account.email)).token


async def test_forgot_password_takes_as_long_for_a_known_email_as_for_an_unknown_one(client, mailbox):
    # The reset token's fingerprint costs an Argon2 hash (over 100 ms here): it is made
    # in the background, so a known email must not answer measurably slower.
    account = await register(client)
    unknown = f"{unique()}@example.com"
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    for _ in range(3):
        for kind, email in (("unknown", unknown), ("known", account.email)):
            start = time.perf_counter()
            assert (await forgot(client, email)).status_code == 202
            timings[kind].append(time.perf_counter() - start)
    assert min(timings["known"]) < min(timings["unknown"]) + 0.075, timings
    await mailbox.wait_for(account.email)


async def test_forgot_password_validates_the_email(client):
    response = await client.post(f"{API}/auth/forgot-password", json={"email": "not-an-email"})
    assert response.status_code == 422
    assert error_code(response) == "validation_error"
    assert "not-an-email" not in response.text


# reset-password


async def test_the_token_from_the_mail_resets_the_password(client, make_client, mailbox):
    account = await register(client)
    token = await reset_token(client, mailbox, account)

    response = await reset(client, token)
    assert response.status_code == 200

    old = await make_client().post(
        f"{API}/auth/login", json={"username": account.username, "password": PASSWORD}
    )
    assert old.status_code == 401
    assert error_code(old) == "invalid_credentials"
    account.password = NEW_PASSWORD
    await login(make_client(), account)


async def test_a_reset_revokes_every_session_of_the_user(client, make_client, mailbox):
    account = await register(client)
    first, second = make_client(), make_client()
    await login(first, account)
    await login(second, account)
    bystander = make_client()
    await login(bystander, await register(bystander))

    assert (await reset(client, await reset_token(client, mailbox, account))).status_code == 200

    for session in (first, second):
        response = await session.get(f"{API}/users/me")
        assert response.status_code == 401
        assert error_code(response) == "not_authenticated"
    # Only that user's sessions.
    assert (await bystander.get(f"{API}/users/me")).status_code == 200


async def test_a_reset_token_works_once(client, mailbox):
    account = await register(client)
    token = await reset_token(client, mailbox, account)
    assert (await reset(client, token)).status_code == 200

    again = await reset(client, token, password="yet-another-long-passphrase")
    assert again.status_code == 400
    assert error_code(again) == "invalid_token"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "",
    ],
)
async def test_a_bad_reset_token_is_400_invalid_token(client, token):
    response = await reset(client, token)
    assert response.status_code == 400
    assert error_code(response) == "invalid_token"
    assert response.json()["error"]["message"] == "The token is invalid or expired."


async def test_a_verification_token_does_not_reset_a_password(client, mailbox):
    account = await register(client)
    await client.post(f"{API}/auth/request-verify-token", json={"email": account.email})
    verify_token = (await mailbox.wait_for(account.email)).token
    response = await reset(client, verify_token)
    assert response.status_code == 400
    assert error_code(response) == "invalid_token"


async def test_the_token_of_a_user_deactivated_since_is_refused(app, client, mailbox):
    account = await register(client)
    token = await reset_token(client, mailbox, account)
    await deactivate(app, account)
    response = await reset(client, token)
    assert response.status_code == 400
    assert error_code(response) == "invalid_token"


async def test_a_reset_to_a_password_the_policy_refuses_changes_nothing(client, make_client, mailbox):
    account = await register(client)
    session = make_client()
    await login(session, account)
    token = await reset_token(client, mailbox, account)

    response = await reset(client, token, password="short")
    assert response.status_code == 400
    assert error_code(response) == "invalid_password"
    assert "at least 8" in response.json()["error"]["message"]

    assert (await session.get(f"{API}/users/me")).status_code == 200
    await login(make_client(), account)  # the old password still works
    # Nothing changed, so the token is still good.
    assert (await reset(client, token)).status_code == 200


# request-verify-token and verify


async def test_verification_flips_is_verified(client, mailbox):
    account = await register(client)
    await login(client, account)
    assert (await client.get(f"{API}/users/me")).json()["is_verified"] is False

    response = await client.post(f"{API}/auth/request-verify-token", json={"email": account.email})
    assert response.status_code == 202
    mail = await mailbox.wait_for(account.email)
    assert mail.subject == "Verify your email address"

    response = await client.post(f"{API}/auth/verify", json={"token": mail.token})
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["is_verified"], body["roles"]) == (account.id, True, ["user"])
    # /users/me is served from the cached snapshot, rewritten after the commit.
    assert (await client.get(f"{API}/users/me")).json()["is_verified"] is True

    again = await client.post(f"{API}/auth/verify", json={"token": mail.token})
    assert again.status_code == 400
    assert error_code(again) == "already_verified"


async def test_request_verify_token_answers_alike_and_mails_only_an_unverified_user(client, mailbox):
    account = await register(client)
    nobody = f"{unique()}@example.com"
    unknown = await client.post(f"{API}/auth/request-verify-token", json={"email": nobody})
    known = await client.post(f"{API}/auth/request-verify-token", json={"email": account.email})
    assert unknown.status_code == known.status_code == 202
    assert unknown.content == known.content
    assert (await mailbox.wait_for(account.email)).event == "verification_requested"
    await asyncio.sleep(NO_MAIL_WAIT_SECONDS)
    assert mailbox.to(nobody) == []
    assert len(mailbox.to(account.email)) == 1


@pytest.mark.parametrize("token", ["garbage", ""])
async def test_a_bad_verification_token_is_400_invalid_token(client, token):
    response = await client.post(f"{API}/auth/verify", json={"token": token})
    assert response.status_code == 400
    assert error_code(response) == "invalid_token"


async def test_a_reset_token_does_not_verify(client, mailbox):
    account = await register(client)
    response = await client.post(
        f"{API}/auth/verify", json={"token": await reset_token(client, mailbox, account)}
    )
    assert response.status_code == 400
    assert error_code(response) == "invalid_token"


# CSRF and the OpenAPI


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("forgot-password", {"email": "csrf-someone@example.com"}),
        ("reset-password", {"token": "x", "password": NEW_PASSWORD}),
        ("request-verify-token", {"email": "csrf-someone@example.com"}),
        ("verify", {"token": "x"}),
    ],
)
async def test_recovery_routes_need_the_csrf_token(client, mailbox, path, body):
    response = await client.post(f"{API}/auth/{path}", json=body, csrf=False)
    assert response.status_code == 403
    assert error_code(response) == "csrf_failed"
    await asyncio.sleep(NO_MAIL_WAIT_SECONDS)
    assert mailbox.to("csrf-someone@example.com") == []


async def test_the_openapi_documents_our_envelope_for_the_recovery_routes(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    envelope = "#/components/schemas/ErrorResponse"
    for path in ("reset-password", "verify"):
        bad = paths[f"{API}/auth/{path}"]["post"]["responses"]["400"]
        assert bad["content"]["application/json"]["schema"]["$ref"] == envelope
    forgot = paths[f"{API}/auth/forgot-password"]["post"]["responses"]
    # Its only 400 is FastAPI's for a body it cannot decode (app/api/openapi.py), never a token error.
    assert re.findall(r"`([a-z_]+)`", forgot["400"]["description"]) == ["bad_request"]
    assert re.findall(r"`([a-z_]+)`", forgot["403"]["description"]) == ["csrf_failed"]


# The mail senders


@pytest.fixture
async def staging_app(database_url: str, redis_prefix: str) -> AsyncIterator[FastAPI]:
    async for app in running(create_app(make_settings(database_url, redis_prefix, environment="staging"))):
        yield app


async def test_outside_development_no_log_line_carries_the_token(staging_app, caplog):
    assert isinstance(state_of(staging_app)[OUTBOX].sender, LogMailSender)  # the real one
    caplog.set_level(logging.DEBUG)
    async with client_factory(staging_app)() as client:
        account = await register(client)
        assert (await forgot(client, account.email)).status_code == 202
        assert (
            await client.post(f"{API}/auth/request-verify-token", json={"email": account.email})
        ).status_code == 202
        deadline = time.monotonic() + MAIL_WAIT_SECONDS
        while len([r for r in caplog.records if r.name == "app.mail"]) < 2:
            assert time.monotonic() < deadline, caplog.text
            await asyncio.sleep(0.01)

    mails = [r.getMessage() for r in caplog.records if r.name == "app.mail"]
    assert all(account.email in line for line in mails), mails
    for record in caplog.records:
        assert "eyJ" not in record.getMessage(), record.getMessage()
        assert "eyJ" not in str(record.__dict__), record.__dict__
    assert "eyJ" not in caplog.text


@pytest.mark.parametrize(
    ("environment", "shows_body"),
    [("development", True), ("test", True), ("staging", False), ("production", False)],
)
async def test_the_log_sender_shows_the_body_only_in_development_and_test(caplog, environment, shows_body):
    caplog.set_level(logging.INFO, logger="app.mail")
    await LogMailSender(environment).send("ada@example.com", "Subject", "the token is eyJsecret")
    assert "ada@example.com" in caplog.text
    assert ("eyJsecret" in caplog.text) is shows_body


def test_the_sender_is_smtp_only_when_smtp_host_is_set(database_url, redis_prefix):
    assert isinstance(create_mail_sender(make_settings(database_url, redis_prefix)), LogMailSender)
    smtp = create_mail_sender(
        make_settings(
            database_url,
            redis_prefix,
            smtp_host="mail.example.com",
            smtp_from="app@example.com",
            smtp_password="pw",
        )
    )
    assert isinstance(smtp, SmtpMailSender)
    assert (smtp.host, smtp.port, smtp.sender, smtp.starttls, smtp.password) == (
        "mail.example.com",
        587,
        "app@example.com",
        True,
        "pw",
    )
    with pytest.raises(ValidationError, match="SMTP_FROM"):
        make_settings(database_url, redis_prefix, smtp_host="mail.example.com")


async def test_the_smtp_sender_delivers_through_aiosmtplib():
    with smtp_server() as (inbox, port):
        sender = SmtpMailSender("127.0.0.1", port=port, sender="app@example.com", starttls=False)
        await sender.send("ada@example.com", "Reset your password", "the body", {"X-Security-Event": "x"})
        mail = await inbox.wait_for("ada@example.com")
    assert mail["From"] == "app@example.com"
    assert mail["Subject"] == "Reset your password"
    assert mail["X-Security-Event"] == "x"
    assert mail.get_content().strip() == "the body"


async def test_forgot_password_for_a_known_email_does_not_slow_the_next_login(client, mailbox):
    # The 202 was equal, but a known email's reset token cost an Argon2 hash behind it,
    # which took the hashing slot: a login sent right after waited ~70 ms longer, enough
    # to tell registered emails from unknown ones (z = 6.6 over 30 samples each). Now the
    # fingerprint is an HMAC. Compared over interleaved samples, by medians, with a
    # margin far below one hash, so that a noisy machine does not decide the outcome.
    known = await register(client)
    bystander = await register(client)
    waits: dict[str, list[float]] = {"known": [], "unknown": []}
    for sample in range(24):
        for kind in ("known", "unknown") if sample % 2 else ("unknown", "known"):
            email = known.email if kind == "known" else f"{unique('nobody')}@example.com"
            assert (await forgot(client, email)).status_code == 202
            started = time.perf_counter()
            attempt = await client.post(
                f"{API}/auth/login", json={"username": bystander.username, "password": "wrong-password-1"}
            )
            waits[kind].append(time.perf_counter() - started)
            assert attempt.status_code == 401
            await asyncio.sleep(0.15)  # let any background work of this sample finish
    known_median = statistics.median(waits["known"])
    unknown_median = statistics.median(waits["unknown"])
    assert known_median < unknown_median * 1.25 + 0.01, (known_median, unknown_median)
    assert mailbox.to(known.email)  # the known email did get its mail
