"""The suite brings its own PostgreSQL and Redis when none answers (tests/fixtures/backing.py),
and says in one line what to install when it cannot."""

import os
import subprocess
import sys
from pathlib import Path

import anyio.to_thread
import asyncpg
import pytest
from redis.asyncio import Redis

from tests.conftest import POSTGRES_URL
from tests.fixtures import backing
from tests.fixtures.backing import answers, provide
from tests.fixtures.server import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
async def test_servers_that_do_not_answer_are_replaced_by_throwaway_ones_removed_at_the_end():
    dead_postgres = f"postgresql://postgres@127.0.0.1:{free_port()}"
    dead_redis = f"redis://127.0.0.1:{free_port()}/13"
    started = await anyio.to_thread.run_sync(provide, dead_postgres, dead_redis)
    try:
        assert started.problem is None
        assert started.postgres_url != dead_postgres
        assert started.redis_url.endswith("/13")  # the configured DB index
        connection = await asyncpg.connect(f"{started.postgres_url}/postgres")
        assert await connection.fetchval("SELECT 1") == 1
        await connection.close()
        redis = Redis.from_url(started.redis_url)
        assert await redis.ping()
        await redis.aclose()
        data = [Path(line.split("data in ")[1].split(",")[0]) for line in started.report]
        assert len(data) == 2
        assert all(directory.is_dir() for directory in data)
    finally:
        started.close()
    assert not answers(started.postgres_url, 5432)
    assert not answers(started.redis_url, 6379)
    assert not any(directory.exists() for directory in data)


def test_missing_server_programs_are_named_with_their_packages(monkeypatch):
    monkeypatch.setattr(backing, "postgres_bindir", lambda: None)
    monkeypatch.setattr(backing.shutil, "which", lambda _name: None)
    result = provide(f"postgresql://postgres@127.0.0.1:{free_port()}", f"redis://127.0.0.1:{free_port()}/13")
    assert result.problem is not None
    assert "\n" not in result.problem
    for package in ("apt-get install postgresql", "brew install postgresql", "apt-get install redis-server"):
        assert package in result.problem
    assert "brew install redis" in result.problem
    assert result.report == []


def test_a_run_without_redis_installed_stops_with_one_line_saying_what_to_install(tmp_path):
    env = {
        "PATH": str(tmp_path),  # no redis-server on it
        "HOME": str(tmp_path),
        "TEST_POSTGRES_URL": POSTGRES_URL,
        "TEST_REDIS_URL": f"redis://127.0.0.1:{free_port()}/13",
        "TEST_DATABASE": os.environ.get("TEST_DATABASE", "app_test") + "_unused",
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_errors.py", "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("ERROR: make test: nothing answers at redis://127.0.0.1:")
    assert "apt-get install redis-server (Debian, Ubuntu) or brew install redis (macOS)" in lines[0]
