"""Structured logs: one JSON line per record with the request id, one access line per
request, console lines in development, and no forged lines (security.md E5)."""

import io
import logging
import re
import uuid
from collections.abc import Iterator

import pytest

from app.config import Settings
from app.logs import HANDLER_NAME, ConsoleFormatter, JsonFormatter, configure_logging
from tests.conftest import make_settings
from tests.fixtures.client import API

UTC_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
FORGED = "x\r\nINFO forged ok"


def ours(logger: logging.Logger) -> list[logging.Handler]:
    return [handler for handler in logger.handlers if handler.get_name() == HANDLER_NAME]


async def test_the_access_line_has_the_route_template_status_duration_and_request_id(client, capture):
    log = capture()
    response = await client.get(f"{API}/items/123")
    request_id = response.headers["x-request-id"]
    (line,) = log.access(request_id)
    assert UTC_TIME.fullmatch(line["time"])
    assert (line["level"], line["logger"]) == ("INFO", "app.access")
    assert line["method"] == "GET"
    assert line["route"] == f"{API}/items/{{item_id}}"
    assert line["status"] == response.status_code
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert line["ip"] == "127.0.0.1"
    assert f"{API}/items/123" not in log.text


async def test_every_record_of_a_request_carries_its_request_id(client, capture):
    log = capture()
    response = await client.post(
        f"{API}/auth/login", json={"username": "nobody-here", "password": "wrong-pw"}
    )
    assert response.status_code == 401
    request_id = response.headers["x-request-id"]
    mine = [line for line in log.lines() if line["request_id"] == request_id]
    assert {line["logger"] for line in mine} >= {"app.audit", "app.access"}
    # An incoming sane id is the one logged.
    response = await client.get("/healthz", headers={"X-Request-ID": "ops-trace-1"})
    assert log.access("ops-trace-1")


async def test_neither_the_query_string_nor_headers_nor_cookies_are_logged(user, capture):
    client, _ = user
    log = capture()
    marker = f"q{uuid.uuid4().hex}"
    response = await client.get(f"{API}/items", params={"q": marker}, headers={"User-Agent": f"ua-{marker}"})
    assert response.status_code == 200
    assert log.access(response.headers["x-request-id"])
    assert marker not in log.text
    assert client.session_token
    assert client.session_token not in log.text


async def test_an_unhandled_error_is_logged_with_its_type_and_traceback(capture):
    log = capture()
    try:
        raise RuntimeError("boom for the log")
    except RuntimeError:
        logging.getLogger("tests.ops").exception("it failed")
    (line,) = [line for line in log.lines() if line["logger"] == "tests.ops"]
    assert line["exc_type"] == "RuntimeError"
    assert "RuntimeError: boom for the log" in line["traceback"]
    assert line["request_id"] is None  # outside any request


def test_a_value_with_cr_lf_stays_inside_its_json_record():
    record = logging.makeLogRecord({"msg": "login %s", "args": (FORGED,), "name": "app", "levelname": "INFO"})
    record.username = FORGED
    text = JsonFormatter().format(record)
    assert "\n" not in text
    assert "\r" not in text


def test_a_value_with_cr_lf_is_escaped_on_the_console():
    record = logging.makeLogRecord(
        {"msg": "login %s", "args": (FORGED,), "name": "app", "levelname": "INFO", "username": FORGED}
    )
    text = ConsoleFormatter().format(record)
    assert "\n" not in text
    assert "\r" not in text
    assert "login x\\r\\nINFO forged ok" in text
    assert "username=" in text
    assert "\\r\\n" in text.split("username=")[1]


async def test_a_forged_line_cannot_be_injected_through_a_username_or_a_path(client, capture):
    as_json, on_console = capture(), capture(ConsoleFormatter())
    response = await client.post(f"{API}/auth/login", json={"username": FORGED, "password": "wrong-pw"})
    assert response.status_code == 401
    # The path reaches the log (the CSRF rejection names it), percent-decoded.
    response = await client.post(f"{API}/x%0D%0AINFO%20forged%20ok", csrf=False)
    assert response.status_code == 403
    records = as_json.lines()  # each line is one whole JSON record
    (rejected,) = [line for line in records if line.get("event") == "csrf_rejected"]
    assert rejected["path"] == f"{API}/x\r\nINFO forged ok"
    console = on_console.text.splitlines()
    assert len(console) == len(records)
    assert not [line for line in console if line.startswith("INFO")]
    assert not [line for line in as_json.text.splitlines() if line.startswith("INFO")]


def test_console_lines_read_time_level_logger_request_id_message_fields():
    record = logging.makeLogRecord(
        {
            "msg": "login failure",
            "name": "app.audit",
            "levelname": "INFO",
            "event": "login",
            "actor": None,
            "ip": "1.2.3.4",
        }
    )
    line = ConsoleFormatter().format(record)
    assert re.fullmatch(r"\S+Z INFO    app\.audit \[-\] login failure event=login ip=1\.2\.3\.4", line), line


@pytest.fixture
def restore_logging(settings: Settings) -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    configure_logging(settings)  # the suite's own, as the session app set it
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    ("environment", "formatter"), [("development", ConsoleFormatter), ("staging", JsonFormatter)]
)
def test_configure_logging_is_idempotent_and_keeps_foreign_handlers(database_url, environment, formatter):
    root = logging.getLogger()
    foreign = logging.StreamHandler(io.StringIO())
    root.addHandler(foreign)
    try:
        for _ in range(3):
            configure_logging(
                make_settings(database_url, "unused:", environment=environment, log_level="warning")
            )
        (handler,) = ours(root)
        assert isinstance(handler.formatter, formatter)
        assert foreign in root.handlers
        assert root.level == logging.WARNING
    finally:
        root.removeHandler(foreign)


@pytest.mark.usefixtures("restore_logging")
def test_uvicorn_logs_through_ours_and_its_access_log_is_off(database_url):
    logging.getLogger("uvicorn").addHandler(logging.StreamHandler(io.StringIO()))
    logging.getLogger("uvicorn.access").addHandler(logging.StreamHandler(io.StringIO()))
    configure_logging(make_settings(database_url, "unused:"))
    for name in ("uvicorn", "uvicorn.error"):
        assert logging.getLogger(name).handlers == []
        assert logging.getLogger(name).propagate
    access = logging.getLogger("uvicorn.access")
    assert not access.hasHandlers()  # what uvicorn checks before writing its own access line
    # SQL with parameters (password hashes) never, whatever LOG_LEVEL says.
    assert not logging.getLogger("sqlalchemy.engine.Engine").isEnabledFor(logging.INFO)
