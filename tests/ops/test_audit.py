"""The audit trail (security.md E3, E4): each security event is one JSON line with UTC time,
event, actor, client IP, outcome and request id, and no password, token or cookie used
anywhere in the flows shows in anything logged, at DEBUG."""

import json
import re
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from app.audit import audit
from app.auth.cookies import COOKIES
from app.state import state_of
from tests.fixtures.client import API, ApiClient, register, unique
from tests.ops.conftest import Captured, client_at

UTC_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
# Unique to this run: a hit in the log can only come from these flows.
PASSWORD = f"Audit-{uuid.uuid4().hex}-Pw"
WRONG = f"Wrong-{uuid.uuid4().hex}-Pw"


class Secrets:
    """Every credential the clients sent or were given: passwords in bodies, every cookie
    value set or sent, every Cookie header, every CSRF token (header and body)."""

    def __init__(self) -> None:
        self.values: set[str] = {PASSWORD, WRONG}

    def add(self, value: str | None) -> None:
        if value and len(value) >= 8:  # cleared cookies are empty
            self.values.add(value)

    async def on_request(self, request: httpx.Request) -> None:
        if cookie := request.headers.get("cookie"):
            self.add(cookie)
            for pair in cookie.split(";"):
                self.add(pair.partition("=")[2].strip())
        self.add(request.headers.get("x-csrf-token"))
        if request.content:
            body = json.loads(request.content)
            self.add(body.get("password"))

    async def on_response(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            self.add(header.split(";", 1)[0].partition("=")[2].strip('"'))
        await response.aread()
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            if isinstance(body, dict):
                self.add(body.get("csrf_token"))

    def hooks(self) -> dict[str, Any]:
        return {"request": [self.on_request], "response": [self.on_response]}


def rid(name: str) -> dict[str, str]:
    return {"X-Request-ID": f"audit-{name}-{uuid.uuid4().hex[:8]}"}


def one_event(log: Captured, event: str, request_id: str) -> dict[str, Any]:
    records = log.events(event, request_id=request_id)
    assert len(records) == 1, (event, request_id, log.text)
    record = records[0]
    assert UTC_TIME.fullmatch(record["time"]), record
    logged_at = datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - logged_at) < timedelta(minutes=5)
    assert record["logger"] == "app.audit"
    return record


async def test_security_events_are_logged_once_each_with_who_what_where_and_no_secret(
    strict_app: FastAPI, capture: Any
) -> None:
    log = capture()
    secrets = Secrets()
    ips = {name: f"198.51.100.{n}" for n, name in enumerate(["alice", "mallory", "bob", "carol", "carol2", "dave", "erin"], 60)}  # fmt: skip
    async with AsyncExitStack() as stack:

        async def client(name: str) -> ApiClient:
            return await stack.enter_async_context(
                client_at(strict_app, ips[name], event_hooks=secrets.hooks())
            )

        alice, mallory, bob, carol, carol2, dave, erin = [
            await client(name) for name in ("alice", "mallory", "bob", "carol", "carol2", "dave", "erin")
        ]
        refresh_cookie = state_of(strict_app)[COOKIES].refresh
        csrf_cookie = state_of(strict_app)[COOKIES].csrf
        login = f"{API}/auth/login"

        # Login failure and success, refresh, then the rotated refresh token replayed.
        a = await register(alice, password=PASSWORD)
        failed = rid("login-failed")
        response = await alice.post(login, json={"username": a.username, "password": WRONG}, headers=failed)
        assert response.status_code == 401
        assert response.headers["x-request-id"] == failed["X-Request-ID"]
        logged_in = rid("login")
        response = await alice.post(
            login, json={"username": a.username, "password": PASSWORD}, headers=logged_in
        )
        assert response.status_code == 200
        stolen = alice.cookies.get(refresh_cookie)
        refreshed = rid("refresh")
        assert (await alice.post(f"{API}/auth/refresh", headers=refreshed)).status_code == 200
        replayed = rid("reuse")
        csrf = await mallory.csrf_token()
        response = await mallory.post(
            f"{API}/auth/refresh",
            headers={
                **replayed,
                "X-CSRF-Token": csrf,
                "Cookie": f"{refresh_cookie}={stolen}; {csrf_cookie}={csrf}",
            },
        )
        assert response.status_code == 401

        # Logout.
        b = await register(bob, password=PASSWORD)
        assert (await bob.post(login, json={"username": b.username, "password": PASSWORD})).status_code == 200
        logged_out = rid("logout")
        assert (await bob.post(f"{API}/auth/logout", headers=logged_out)).status_code == 200

        # One session revoked from another, then logout everywhere.
        c = await register(carol, password=PASSWORD)
        for device in (carol, carol2):
            assert (
                await device.post(login, json={"username": c.username, "password": PASSWORD})
            ).status_code == 200
        sessions = (await carol.get(f"{API}/users/me/sessions")).json()
        other = next(session["id"] for session in sessions if not session["current"])
        revoked = rid("revoke")
        assert (await carol.delete(f"{API}/users/me/sessions/{other}", headers=revoked)).status_code == 204
        everywhere = rid("logout-all")
        assert (await carol.post(f"{API}/auth/logout-all", headers=everywhere)).status_code == 200

        # A CSRF rejection, and a login over the limit (2 a minute per client address).
        forged = rid("csrf")
        response = await dave.post(f"{API}/items", json={"title": "x"}, csrf=False, headers=forged)
        assert response.status_code == 403
        for _ in range(2):
            response = await erin.post(login, json={"username": unique(), "password": WRONG})
            assert response.status_code == 401
        limited = rid("limited")
        response = await erin.post(login, json={"username": unique(), "password": WRONG}, headers=limited)
        assert response.status_code == 429

        session_tokens = [alice.session_token, carol.session_token]

    expected = [
        ("login", failed, "failure", None, ips["alice"]),
        ("login", logged_in, "success", a.id, ips["alice"]),
        ("refresh", refreshed, "success", a.id, ips["alice"]),
        ("refresh_reuse", replayed, "login_revoked", a.id, ips["mallory"]),
        ("logout", logged_out, "success", b.id, ips["bob"]),
        ("session_revoked", revoked, "success", c.id, ips["carol"]),
        ("logout_all", everywhere, "success", c.id, ips["carol"]),
        ("csrf_rejected", forged, "denied", None, ips["dave"]),
        ("rate_limited", limited, "denied", None, ips["erin"]),
    ]
    for event, headers, outcome, actor, ip in expected:
        record = one_event(log, event, headers["X-Request-ID"])
        assert (record["outcome"], record["actor"], record["ip"]) == (outcome, actor, ip), record
        assert "target" in record

    # What was searched for is what the flows really used.
    assert all(token in secrets.values for token in session_tokens if token)
    assert stolen in secrets.values
    assert len(secrets.values) > 20
    text = log.text
    leaked = sorted(value for value in secrets.values if value in text)
    assert leaked == [], "credentials in the log"
    for marker in ("Cookie:", "cookie:", "password=", '"password"', "Set-Cookie"):
        assert marker not in text


async def test_an_audit_record_outside_a_request_has_no_ip_and_no_request_id(capture: Any) -> None:
    log = capture()
    audit(None, "sessions_revoked", "success", target=42, revoked=3, via="cli")
    (record,) = log.events("sessions_revoked")
    assert record["ip"] is None
    assert record["request_id"] is None
    assert (record["target"], record["revoked"], record["via"]) == (42, 3, "cli")
