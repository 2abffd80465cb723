"""Live-updates fixtures: the session's app served by an in-process uvicorn (sockets
need a real server; the test can still look inside the app), and two uvicorn
processes on the tests' database and Redis prefix, as two workers of one deployment.
"""

import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from app.auth.cookies import COOKIES
from app.state import state_of
from tests.conftest import REDIS_URL, SECRET_KEY, ClientFactory, promote
from tests.fixtures.client import Account, ApiClient, login, register
from tests.fixtures.server import free_port, stop, wait_until_live

ROOT = Path(__file__).resolve().parents[2]
# docker/entrypoint.sh's uvicorn flags, for every server the tests start.
WS_MAX_SIZE = 65536
WS_PROTOCOL = "app.live.protocol:LiveWebSocketProtocol"


# --------------------------------------------------------------------------- in process


@asynccontextmanager
async def uvicorn_serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` (its lifespan already running) behind a uvicorn server in this process: its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free_port(),
        lifespan="off",
        log_config=None,
        log_level="warning",
        ws=WS_PROTOCOL,
        ws_max_size=WS_MAX_SIZE,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def served(app: FastAPI) -> AsyncIterator[str]:
    """The session's app behind a uvicorn server in this process: its base URL."""
    async with uvicorn_serving(app) as base_url:
        yield base_url


def cookie_of(app: FastAPI, client: ApiClient) -> str:
    token = client.session_token
    assert token, "not logged in"
    return f"{state_of(app)[COOKIES].session}={token}"


# --------------------------------------------------------------------------- two processes


@dataclass
class Worker:
    """One uvicorn process of the deployment."""

    base_url: str
    process: subprocess.Popen[bytes]
    log: IO[str]

    async def metric(self, name: str) -> float:
        async with httpx.AsyncClient(base_url=self.base_url) as client:
            text = (await client.get("/metrics")).text
        for line in text.splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not in /metrics")

    def client(self) -> ApiClient:
        # COOKIE_SECURE=false over plain http: the names without prefixes (API.md section 2).
        return ApiClient(base_url=self.base_url, csrf_cookie="csrftoken", session_cookie="session")


@dataclass
class Deployment:
    workers: list[Worker]
    clients: list[ApiClient] = field(default_factory=list)

    def client(self, worker: int) -> ApiClient:
        client = self.workers[worker].client()
        self.clients.append(client)
        return client


def _server_env(database_url: str, redis_prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": redis_prefix,  # the tests' own: shared with the in-process app
        "SECRET_KEY": SECRET_KEY,
        "COOKIE_SECURE": "false",  # plain http
        "LOG_LEVEL": "warning",
        "LOGIN_RATE_LIMIT": "100000/minute",
        "REGISTER_RATE_LIMIT": "100000/hour",
        "FIRST_SUPERUSER_EMAIL": "",
        "FIRST_SUPERUSER_PASSWORD": "",
        "SENTRY_DSN": "",
    }


def _start(env: dict[str, str]) -> Worker:
    port = free_port()
    # As docker/entrypoint.sh runs it: no permessage-deflate, frames up to 64 KiB, our --ws.
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--ws-per-message-deflate", "false", "--ws-max-size", str(WS_MAX_SIZE), "--ws", WS_PROTOCOL]
    log = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(
        [*command, "--no-access-log"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    return Worker(f"http://127.0.0.1:{port}", process, log)


def _log_of(worker: Worker) -> str:
    worker.log.seek(0)
    return str(worker.log.read())


@pytest.fixture(scope="session")
def workers(database_url: str, redis_prefix: str) -> Iterator[list[Worker]]:
    """Two uvicorn processes on one database and one Redis prefix, stopped at the end."""
    env = _server_env(database_url, redis_prefix)
    started: list[Worker] = []
    try:
        for _ in range(2):
            started.append(_start(env))
        for worker in started:
            wait_until_live(worker.process, worker.base_url, lambda w=worker: _log_of(w))
        yield started
    finally:
        for worker in started:
            stop(worker.process)
            worker.log.close()


@pytest.fixture
async def deployment(workers: list[Worker]) -> AsyncIterator[Deployment]:
    made = Deployment(workers)
    yield made
    for client in made.clients:
        await client.aclose()


UserFactory = Callable[..., Awaitable[tuple[ApiClient, Account]]]


@pytest.fixture
def make_user(deployment: Deployment, app: FastAPI) -> UserFactory:
    """make_user(worker, admin=False): a registered user logged in through that worker."""

    async def make(worker: int = 0, *, admin: bool = False) -> tuple[ApiClient, Account]:
        client = deployment.client(worker)
        account = await register(client)
        if admin:
            await promote(app, account.id)
        await login(client, account)
        return client, account

    return make


def socket_cookie(client: ApiClient) -> str:
    token = client.session_token
    assert token, "not logged in"
    return f"{client.session_cookie}={token}"


@pytest.fixture
def logged_in(make_client: ClientFactory):
    """Makes a registered, logged-in client."""

    async def make() -> ApiClient:
        client = make_client()
        await login(client, await register(client))
        return client

    return make
