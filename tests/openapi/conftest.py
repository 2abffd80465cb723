"""A live server of the OpenAPI tests' own, for schemathesis (tests/openapi/test_schemathesis.py).

A real uvicorn process, as in production (and as bench/server.py starts one), so that what
schemathesis checks is what goes over the wire: the server's own HTTP parsing included. It
owns a database (`<TEST_DATABASE>_st`, created, migrated, dropped at the end), a Redis key
prefix under the run's own (deleted with it), and a free port; the process is stopped at
the end, also when a test failed.
"""

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
import httpx
import pytest

from app.ops.bootstrap import migrate
from tests.conftest import (
    REDIS_URL,
    SECRET_KEY,
    TEST_DATABASE,
    drop_database,
    make_settings,
    recreate_database,
)
from tests.fixtures.announce import announce
from tests.fixtures.client import API, PASSWORD
from tests.fixtures.server import free_port, stop, wait_until_live

ROOT = Path(__file__).resolve().parents[2]
# COOKIE_SECURE=false (plain http): the cookies go without their __Host-/__Secure- prefixes.
SESSION_COOKIE = "session"
CSRF_COOKIE = "csrftoken"


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    log: Path  # everything the server wrote: the tracebacks of a 500 are there

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass(frozen=True)
class Credentials:
    """What a logged-in browser holds: the session cookie, and the CSRF token bound to it."""

    session: str
    csrf_token: str


def server_env(database_url: str, redis_prefix: str) -> dict[str, str]:
    # Only PATH from the caller's environment, and the server runs outside the project
    # folder (--app-dir): neither a developer's shell nor a local .env reaches it.
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": redis_prefix,
        "SECRET_KEY": SECRET_KEY,
        "COOKIE_SECURE": "false",  # plain http: Secure cookies would never come back
        "DOCS_ENABLED": "true",
        "LOG_LEVEL": "warning",
        # schemathesis logs in and registers far more often than a person would, from one address.
        "LOGIN_RATE_LIMIT": "1000000/minute",
        "REGISTER_RATE_LIMIT": "1000000/hour",
    }


@pytest.fixture(scope="module")
def server_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("live-server")


@pytest.fixture(scope="module")
async def live_server(
    redis_prefix: str, server_directory: Path, pytestconfig: pytest.Config
) -> AsyncIterator[LiveServer]:
    name = f"{TEST_DATABASE}_st"
    database_url = await recreate_database(name)
    await anyio.to_thread.run_sync(migrate, make_settings(database_url, "unused:"))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = server_directory / "server.log"
    command = [
        sys.executable, "-m", "uvicorn", "app.main:app",
        "--app-dir", str(ROOT),
        "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log",
    ]  # fmt: skip
    env = server_env(database_url, f"{redis_prefix}st{uuid.uuid4().hex[:8]}:")
    try:
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, cwd=server_directory, env=env, stdout=output, stderr=subprocess.STDOUT
            )
        announce(
            pytestconfig, f"tests/openapi: started uvicorn for schemathesis (pid {process.pid}) on {base_url}"
        )
        try:
            await anyio.to_thread.run_sync(wait_until_live, process, base_url, log.read_text)
            yield LiveServer(base_url, log)
        finally:
            stop(process)
    finally:
        await drop_database(name)


def expect(response: httpx.Response, status: int) -> httpx.Response:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    return response


@pytest.fixture(scope="module")
def logged_in(live_server: LiveServer) -> Iterator[Credentials]:
    """Registers and logs in a user through the API, as the SPA does (CSRF dance included),
    and gives it a public and a private item, so that the lists have something to show."""
    with httpx.Client(base_url=live_server.base_url, timeout=10) as client:
        anonymous = expect(client.get(f"{API}/auth/csrf"), 200).json()["csrf_token"]
        username = f"st{secrets.token_hex(6)}"
        account = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
        headers = {"X-CSRF-Token": anonymous}
        expect(client.post(f"{API}/auth/register", json=account, headers=headers), 201)
        login = expect(
            client.post(
                f"{API}/auth/login", json={"username": username, "password": PASSWORD}, headers=headers
            ),
            200,
        )
        credentials = Credentials(
            session=login.cookies[SESSION_COOKIE], csrf_token=login.json()["csrf_token"]
        )
        for private in (False, True):
            expect(
                client.post(
                    f"{API}/items",
                    json={"title": f"seeded by {username}", "is_private": private},
                    headers={"X-CSRF-Token": credentials.csrf_token},
                ),
                201,
            )
        yield credentials


@pytest.fixture(scope="module")
def anonymous_csrf_token(live_server: LiveServer) -> str:
    """The token a browser holds before login (bound to no session)."""
    response = expect(httpx.get(f"{live_server.base_url}{API}/auth/csrf", timeout=10), 200)
    return str(response.json()["csrf_token"])
