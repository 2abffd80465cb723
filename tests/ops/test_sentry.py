"""Sentry (API.md section 8): initialised only when SENTRY_DSN is set, without personal
data, and never sending cookies or headers."""

from typing import Any

import pytest
import sentry_sdk

from app.logs import scrub_event
from app.main import create_app
from tests.conftest import make_settings


@pytest.fixture
def sentry_init(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(sentry_sdk, "init", lambda **kwargs: calls.append(kwargs))
    return calls


def test_without_a_dsn_sentry_is_not_initialised(database_url, sentry_init):
    create_app(make_settings(database_url, "unused:"))
    assert sentry_init == []


def test_with_a_dsn_sentry_is_initialised_without_personal_data(database_url, sentry_init):
    dsn = "https://public@sentry.invalid/1"
    create_app(make_settings(database_url, "unused:", sentry_dsn=dsn, environment="staging"))
    (options,) = sentry_init
    assert options["dsn"] == dsn
    assert options["environment"] == "staging"
    assert options["send_default_pii"] is False
    assert options["include_local_variables"] is False
    assert options["before_send"] is scrub_event


def test_events_lose_cookies_headers_and_body():
    event = {
        "request": {
            "url": "https://api.example/api/v1/auth/login",
            "method": "POST",
            "cookies": {"__Host-session": "secret"},
            "headers": {"Cookie": "__Host-session=secret", "X-CSRF-Token": "t"},
            "data": {"password": "hunter22"},
            "query_string": "token=abc",
        },
        "message": "boom",
    }
    scrubbed = scrub_event(event, {})
    assert scrubbed["request"] == {"url": "https://api.example/api/v1/auth/login", "method": "POST"}
    assert scrub_event({"message": "no request"}, {}) == {"message": "no request"}
