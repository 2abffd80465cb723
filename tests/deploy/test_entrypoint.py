"""docker/entrypoint.sh run natively (no Docker): against a scratch database of our own
and our own Redis key prefix, it migrates, the app creates the first superuser, uvicorn
answers /healthz and exits on SIGTERM; with PostgreSQL unreachable it gives up in time."""

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import yaml

from tests.conftest import REDIS_URL, TEST_DATABASE, drop_database, recreate_database
from tests.fixtures.server import free_port

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
DATABASE = f"{TEST_DATABASE}_entrypoint"
SUPERUSER_EMAIL = "root-entrypoint@example.com"
STARTUP_SECONDS = 30.0


def script_env(database_url: str, port: int, tmp_path: Path, **extra: str) -> dict[str, str]:
    # Only what the container would get: no inherited settings, and a working
    # directory without a .env (tmp_path), so a developer's .env cannot leak in.
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": f"deploy:{uuid.uuid4().hex[:8]}:",
        "ENVIRONMENT": "production",
        "SECRET_KEY": "deploy-test-secret-key-" + uuid.uuid4().hex,
        "PORT": str(port),
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "FIRST_SUPERUSER_EMAIL": SUPERUSER_EMAIL,
        "FIRST_SUPERUSER_USERNAME": "rootentry",
        "FIRST_SUPERUSER_PASSWORD": "Entrypoint-superuser-pass-" + uuid.uuid4().hex[:12],
        "LOG_LEVEL": "warning",
        **extra,
    }


@pytest.fixture
async def scratch_database() -> Iterator[str]:
    url = await recreate_database(DATABASE)
    yield url
    await drop_database(DATABASE)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def health_checks(port: int) -> list[list[str]]:
    """The Dockerfile's HEALTHCHECK and the compose file's backend healthcheck, as argv;
    compose's names port 8000, which compose sets as PORT: here it is `port`."""
    dockerfile = re.search(r"HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])", (ROOT / "Dockerfile").read_text())
    assert dockerfile
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["backend"]["healthcheck"]
    assert compose["test"][0] == "CMD"
    return [json.loads(dockerfile[1]), [part.replace(":8000/", f":{port}/") for part in compose["test"][1:]]]


def run_check(argv: list[str], port: int) -> int:
    assert argv[0] == "python"
    env = {"PATH": "/usr/bin:/bin", "PORT": str(port)}
    return subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, timeout=10).returncode


async def test_entrypoint_migrates_and_serves(scratch_database: str, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "entrypoint.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [str(ENTRYPOINT)],
        cwd=tmp_path,
        env=script_env(scratch_database, port, tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        status = None
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    status = (await client.get(f"http://127.0.0.1:{port}/healthz", timeout=2)).status_code
                    if status == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.3)
        assert status == 200, f"no 200 from /healthz (exit {process.poll()}):\n{log_path.read_text()}"

        conn = await asyncpg.connect(scratch_database)
        try:
            assert await conn.fetchval("SELECT to_regclass('public.user') IS NOT NULL")
            # The app creates it in a start-up task (password hashing included): poll.
            superuser = None
            while superuser is None and time.monotonic() < deadline + STARTUP_SECONDS:
                superuser = await conn.fetchval(
                    'SELECT is_superuser FROM "user" WHERE email = $1', SUPERUSER_EMAIL
                )
                time.sleep(0.3)
            assert superuser, log_path.read_text()
        finally:
            await conn.close()

        # The container's health checks, run as Docker would run them (in the container,
        # where the app listens on PORT): healthy now.
        for check in health_checks(port):
            assert run_check(check, port) == 0, check

        # Exec form: the script's process IS uvicorn now, so SIGTERM reaches it.
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) is not None
        for check in health_checks(port):
            assert run_check(check, port) != 0, check
    finally:
        stop(process)
        log.close()


def test_entrypoint_gives_up_when_postgres_is_unreachable(tmp_path: Path) -> None:
    env = script_env(
        "postgresql://postgres@127.0.0.1:1/nowhere", free_port(), tmp_path, WAIT_TIMEOUT_SECONDS="3"
    )
    started = time.monotonic()
    result = subprocess.run(
        [str(ENTRYPOINT)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert time.monotonic() - started < 20
    assert "PostgreSQL at 127.0.0.1:1 not reachable after 3 s" in result.stderr
    assert "starting uvicorn" not in result.stderr
