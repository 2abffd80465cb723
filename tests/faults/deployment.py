"""Two uvicorn worker processes of one deployment, on a PostgreSQL and a Redis of the test's
own (tests/fixtures/servers.py), which the test pauses, restarts and resumes; and what the
test needs to tell, afterwards, who is logged in."""

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from redis.asyncio import Redis

from tests.conftest import SECRET_KEY
from tests.fixtures.client import ApiClient
from tests.fixtures.server import free_port, stop, wait_until_live
from tests.fixtures.servers import ThrowawayPostgres, ThrowawayRedis

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "faults:"


@dataclass
class Worker:
    base_url: str
    process: subprocess.Popen[bytes]
    log: IO[str]

    def lines(self) -> list[dict[str, object]]:
        """The worker's log so far, one JSON object per line."""
        self.log.seek(0)
        out = []
        for line in self.log.read().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


@dataclass
class Deployment:
    postgres: ThrowawayPostgres
    redis: ThrowawayRedis
    database_url: str
    workers: list[Worker] = field(default_factory=list)
    clients: list[ApiClient] = field(default_factory=list)

    def client(self, worker: int) -> ApiClient:
        # COOKIE_SECURE=false over plain http: the names without prefixes (API.md section 2).
        client = ApiClient(
            base_url=self.workers[worker % len(self.workers)].base_url,
            csrf_cookie="csrftoken",
            session_cookie="session",
            timeout=15,
        )
        self.clients.append(client)
        return client

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ENVIRONMENT": "test",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis.url,
            "REDIS_KEY_PREFIX": PREFIX,
            "SECRET_KEY": SECRET_KEY,
            "COOKIE_SECURE": "false",
            "LOG_LEVEL": "info",
            "LOGIN_RATE_LIMIT": "100000/minute",
            "REGISTER_RATE_LIMIT": "100000/hour",
            "FIRST_SUPERUSER_EMAIL": "",
            "FIRST_SUPERUSER_PASSWORD": "",
            "SENTRY_DSN": "",
        }

    def start_workers(self, count: int = 2) -> None:
        for _ in range(count):
            port = free_port()
            log = tempfile.TemporaryFile(mode="w+")
            process = subprocess.Popen(
                # A kept-alive connection outlives the test's pauses: with uvicorn's 5 s
                # default, a request sent just as the server closes an idle one fails
                # with a reset that says nothing about the app.
                [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
                 "--no-access-log", "--timeout-keep-alive", "60"],
                cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            self.workers.append(Worker(f"http://127.0.0.1:{port}", process, log))
        for worker in self.workers:
            wait_until_live(worker.process, worker.base_url, lambda w=worker: _text(w))

    async def close(self) -> None:
        self.redis.resume()
        self.postgres.resume()
        for client in self.clients:
            await client.aclose()
        for worker in self.workers:
            stop(worker.process)
            worker.log.close()

    async def logins_in_redis(self, user_id: int) -> set[str]:
        """The logins of `user_id` that Redis holds (their records, not only the index)."""
        redis = Redis.from_url(self.redis.url, decode_responses=True)
        try:
            ids = await redis.smembers(f"{PREFIX}uf:{user_id}")  # type: ignore[misc]
            return {login for login in ids if await redis.exists(f"{PREFIX}f:{login}")}
        finally:
            await redis.aclose()

    def audited(self, event: str, outcome: str) -> list[dict[str, object]]:
        return [
            line
            for worker in self.workers
            for line in worker.lines()
            if line.get("logger") == "app.audit"
            and line.get("event") == event
            and line.get("outcome") == outcome
        ]


def _text(worker: Worker) -> str:
    worker.log.seek(0)
    return str(worker.log.read())
