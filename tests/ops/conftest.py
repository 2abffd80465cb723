"""Log capture and apps of the ops tests' own.

Records are captured by a handler with the service's own formatter on the root
logger, at DEBUG (as security.md E3 asks: secrets must not show even there), so that
what is searched is exactly the text an operator's log pipeline would receive.
"""

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.auth.cookies import COOKIES
from app.logs import JsonFormatter
from app.main import create_app
from app.state import state_of
from tests.conftest import make_settings, running
from tests.fixtures.client import ApiClient

CLIENT_LOGGERS = ("httpx", "httpcore")


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Every line parsed as JSON (fails on a line that is not one record)."""
        return [json.loads(line) for line in self.text.splitlines()]

    def events(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines()
            if line.get("event") == event and all(line.get(key) == value for key, value in fields.items())
        ]

    def access(self, request_id: str) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines()
            if line["logger"] == "app.access" and line["request_id"] == request_id
        ]


@pytest.fixture
def capture() -> Iterator[Any]:
    """capture(formatter=JsonFormatter()) -> Captured; everything the process logs from then on."""
    root = logging.getLogger()
    level = root.level
    handlers: list[logging.Handler] = []

    def start(formatter: logging.Formatter | None = None) -> Captured:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter or JsonFormatter())
        # httpx is the tests' client, not the service: its lines (full URLs) are not the service's log.
        handler.addFilter(lambda record: not record.name.startswith(CLIENT_LOGGERS))
        root.addHandler(handler)
        handlers.append(handler)
        root.setLevel(logging.DEBUG)
        return Captured(stream)

    yield start
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(level)


def client_at(app: FastAPI, ip: str, **kwargs: Any) -> ApiClient:
    """A client whose TCP peer is `ip` (not a trusted proxy, so that is its client address)."""
    cookies = state_of(app)[COOKIES]
    return ApiClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 40000)),
        base_url="https://testserver",
        csrf_cookie=cookies.csrf,
        session_cookie=cookies.session,
        **kwargs,
    )


@pytest.fixture(scope="module")
async def strict_app(database_url: str, redis_prefix: str) -> AsyncIterator[FastAPI]:
    """Login limited to 2 a minute, refresh reuse detected at once, and a Redis key prefix of
    its own (under the run's, which is deleted at the end) so that no other test's logins count."""
    root = logging.getLogger()
    level = root.level
    settings = make_settings(
        database_url,
        f"{redis_prefix}ops{uuid.uuid4().hex[:8]}:",
        login_rate_limit="2/minute",
        refresh_reuse_grace_seconds=0,
    )
    async for app in running(create_app(settings)):
        yield app
    root.setLevel(level)
