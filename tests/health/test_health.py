"""API.md section 8: liveness, readiness, and the embedded default."""

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from app import __version__
from app.config import Settings
from app.main import create_app
from tests.conftest import client_factory, make_settings, serving
from tests.fixtures.client import API, login, register

READINESS_FIELDS = {"status", "uptime_seconds", "db", "redis", "version"}
READINESS_PATHS = ("/health", f"{API}/health")
CLOSED_PORT_POSTGRES = "postgresql://postgres@127.0.0.1:1/nothing"
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"
ANSWER_WITHIN_SECONDS = 5


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never answers: a hanging dependency."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


def settings_with(database_url: str, redis_prefix: str, overrides: dict[str, str]) -> Settings:
    """The test settings, with `overrides` pointing some dependency elsewhere."""
    overrides = dict(overrides)
    return make_settings(overrides.pop("database_url", database_url), redis_prefix, **overrides)


def assert_unavailable(response, *failed: str) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "service_unavailable"
    assert isinstance(error["details"], dict)
    assert set(error["details"]) == set(failed)
    assert int(response.headers["retry-after"]) > 0


# --- with PostgreSQL and Redis up -------------------------------------------------------------


async def test_liveness_answers_ok(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", READINESS_PATHS)
async def test_readiness_reports_every_dependency_ok(client, path):
    response = await client.get(path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == READINESS_FIELDS
    assert body["status"] == "ok"
    assert body["db"] == "ok"
    assert body["redis"] == "ok"
    assert body["version"] == __version__
    assert isinstance(body["uptime_seconds"], int)
    assert body["uptime_seconds"] >= 0


@pytest.mark.parametrize("path", ["/healthz", *READINESS_PATHS])
async def test_health_routes_need_no_session_or_csrf(make_client, path):
    client = make_client()
    response = await client.get(path)
    assert response.status_code == 200
    assert not response.headers.get_list("set-cookie")


# --- with a dependency down ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "failed"),
    [
        pytest.param({"database_url": CLOSED_PORT_POSTGRES}, ("db",), id="postgres-down"),
        pytest.param({"redis_url": CLOSED_PORT_REDIS}, ("redis",), id="redis-down"),
        pytest.param(
            {"database_url": CLOSED_PORT_POSTGRES, "redis_url": CLOSED_PORT_REDIS},
            ("db", "redis"),
            id="both-down",
        ),
    ],
)
async def test_readiness_is_503_naming_the_failed_check_while_liveness_stays_200(
    database_url, redis_prefix, overrides, failed
):
    app = create_app(settings_with(database_url, redis_prefix, overrides))
    with anyio.fail_after(ANSWER_WITHIN_SECONDS * 3):  # start-up must not wait for the dependency either
        async with serving(app), client_factory(app)() as client:
            live = await client.get("/healthz")
            assert live.status_code == 200
            assert live.json() == {"status": "ok"}
            for path in READINESS_PATHS:
                with anyio.fail_after(ANSWER_WITHIN_SECONDS):
                    response = await client.get(path)
                assert_unavailable(response, *failed)
                assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("dependency", ["db", "redis"])
async def test_readiness_answers_503_within_5_seconds_when_a_dependency_hangs(
    database_url, redis_prefix, dependency
):
    async with silent_server() as port:
        if dependency == "db":
            overrides = {"database_url": f"postgresql://postgres@127.0.0.1:{port}/nothing"}
        else:
            overrides = {"redis_url": f"redis://127.0.0.1:{port}/0"}
        app = create_app(settings_with(database_url, redis_prefix, overrides))
        async with serving(app), client_factory(app)() as client:
            with anyio.fail_after(ANSWER_WITHIN_SECONDS):
                assert (await client.get("/healthz")).status_code == 200
            with anyio.fail_after(ANSWER_WITHIN_SECONDS):
                response = await client.get("/health")
            assert_unavailable(response, dependency)


# --- the embedded default ---------------------------------------------------------------------------


@pytest.fixture
def embedded_settings(tmp_path, monkeypatch) -> Settings:
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ENVIRONMENT", "COOKIE_SECURE", "SQLITE_PATH"):
        monkeypatch.delenv(name, raising=False)
    return Settings(_env_file=None, environment="development", sqlite_path=tmp_path / "app.db")  # type: ignore[call-arg]


async def test_embedded_default_migrates_at_start_and_serves_a_user(embedded_settings):
    assert embedded_settings.embedded
    app = create_app(embedded_settings)
    async with serving(app), client_factory(app, base_url="http://testserver")() as client:
        with sqlite3.connect(embedded_settings.sqlite_path) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            assert {"alembic_version", "user", "item"} <= tables
            assert db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1

        health = await client.get("/health")
        assert health.status_code == 200, health.text
        body = health.json()
        assert set(body) == READINESS_FIELDS
        assert (body["status"], body["db"], body["redis"]) == ("ok", "ok", "not_configured")

        csrf = await client.get(f"{API}/auth/csrf")
        assert "csrftoken" in client.cookies
        for header in csrf.headers.get_list("set-cookie"):
            assert "secure" not in header.lower()

        account = await register(client)
        logged_in = await login(client, account)
        cookies = logged_in.headers.get_list("set-cookie")
        assert any(header.startswith("session=") for header in cookies)
        assert any(header.startswith("csrftoken=") for header in cookies)
        for header in cookies:
            assert "secure" not in header.lower()
            assert not header.startswith("__")

        me = await client.get(f"{API}/users/me")
        assert me.status_code == 200, me.text
        assert me.json()["id"] == account.id

        created = await client.post(f"{API}/items", json={"title": "first item"})
        assert created.status_code == 201, created.text
        item = created.json()
        assert item["owner_id"] == account.id
        fetched = await client.get(f"{API}/items/{item['id']}")
        assert fetched.status_code == 200
        assert fetched.json()["title"] == "first item"


async def test_embedded_default_keeps_its_data_across_a_restart(embedded_settings):
    app = create_app(embedded_settings)
    async with serving(app), client_factory(app, base_url="http://testserver")() as client:
        account = await register(client)

    again = create_app(embedded_settings)
    async with serving(again), client_factory(again, base_url="http://testserver")() as client:
        await login(client, account)  # migrations ran again on the same file without harm
        assert (await client.get(f"{API}/users/me")).json()["username"] == account.username
