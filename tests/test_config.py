"""API.md section 8: the environment, the production guard, CORS_ORIGINS, FIRST_SUPERUSER_*."""

import asyncio
import os
import sys
from pathlib import Path

import anyio
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import func, select

from app.auth.cookies import COOKIES
from app.config import EXAMPLE_SECRET_KEY, Settings
from app.db import SESSIONMAKER
from app.main import create_app
from app.models import User
from app.ops.bootstrap import ensure_first_superuser
from app.state import state_of
from tests.conftest import REDIS_URL, SECRET_KEY, client_factory, make_settings, serving
from tests.fixtures.client import API, PASSWORD, Account, login, register, unique

ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = "k" * 40
SETTINGS_ENV = {name.upper() for name in Settings.model_fields}
BOOTSTRAP_WAIT_SECONDS = 10


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Only what a test sets reaches Settings: nothing from the caller's shell."""
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)


def production(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "production",
        "secret_key": STRONG_KEY,
        "redis_url": REDIS_URL,
        "database_url": "postgresql://postgres@127.0.0.1:5432/x",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


# --- ENVIRONMENT -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["prod", "dev", "testing", "local", "", "production2", "prod uction"])
def test_unknown_environment_is_refused(value):
    with pytest.raises(ValidationError):
        Settings(_env_file=None, environment=value)  # type: ignore[call-arg]


def test_unknown_environment_from_the_environment_variable_is_refused(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "qa")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("value", ["development", "test", "staging", "Staging", " test "])
def test_known_environments_are_accepted(monkeypatch, value):
    monkeypatch.setenv("ENVIRONMENT", value)
    assert Settings(_env_file=None).environment == value.strip().lower()  # type: ignore[call-arg]


# --- the production guard ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        pytest.param({"secret_key": None}, "SECRET_KEY", id="missing-key"),
        pytest.param({"secret_key": ""}, "SECRET_KEY", id="empty-key"),
        pytest.param({"secret_key": "   "}, "SECRET_KEY", id="blank-key"),
        pytest.param({"secret_key": "x" * 31}, "SECRET_KEY", id="31-char-key"),
        pytest.param({"secret_key": EXAMPLE_SECRET_KEY}, "SECRET_KEY", id="example-key"),
        pytest.param({"cookie_secure": False}, "COOKIE_SECURE", id="insecure-cookies"),
        pytest.param({"redis_url": None}, "REDIS_URL", id="no-redis"),
        pytest.param({"redis_url": ""}, "REDIS_URL", id="empty-redis"),
    ],
)
def test_production_refuses_an_unsafe_configuration(overrides, names):
    with pytest.raises(ValidationError) as refused:
        production(**overrides)
    assert names in str(refused.value)


def test_production_refuses_the_example_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", EXAMPLE_SECRET_KEY)
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_production_refuses_cookie_secure_false_from_the_environment(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", STRONG_KEY)
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("COOKIE_SECURE", "false")
    with pytest.raises(ValidationError, match="COOKIE_SECURE"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_valid_production_configuration_loads_with_secure_cookies_and_no_docs():
    settings = production(secret_key="x" * 32)
    assert settings.secure_cookies is True
    assert settings.show_docs is False


def test_non_production_environments_accept_a_weak_key_and_no_redis():
    for environment in ("development", "test", "staging"):
        settings = Settings(_env_file=None, environment=environment, secret_key="short")  # type: ignore[call-arg]
        assert settings.environment == environment


@pytest.mark.parametrize(
    ("environment", "secure"),
    [("development", False), ("test", True), ("staging", True), ("production", True)],
)
def test_cookie_secure_defaults_to_false_only_in_development(environment, secure):
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, environment=environment, secret_key=STRONG_KEY, redis_url=REDIS_URL
    )
    assert settings.secure_cookies is secure
    names = state_of(create_app(settings))[COOKIES]
    if secure:
        assert (names.session, names.refresh, names.csrf) == (
            "__Host-session",
            "__Secure-refresh",
            "__Host-csrftoken",
        )
    else:
        assert (names.session, names.refresh, names.csrf) == ("session", "refresh", "csrftoken")


def test_cookie_secure_can_be_forced_on_in_development(monkeypatch):
    monkeypatch.setenv("COOKIE_SECURE", "true")
    assert Settings(_env_file=None, environment="development").secure_cookies is True  # type: ignore[call-arg]


async def test_production_app_serves_secure_cookies_and_hides_the_docs(database_url, redis_prefix):
    app = create_app(make_settings(database_url, redis_prefix, environment="production"))
    async with serving(app), client_factory(app)() as client:
        for path in ("/openapi.json", "/docs", "/redoc"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"
        csrf = await client.get(f"{API}/auth/csrf")
        assert csrf.status_code == 200
        (cookie,) = csrf.headers.get_list("set-cookie")
        assert cookie.startswith("__Host-csrftoken=")
        assert "; Secure" in cookie


async def test_production_app_serves_the_docs_when_docs_enabled(database_url, redis_prefix):
    settings = make_settings(database_url, redis_prefix, environment="production", docs_enabled=True)
    app = create_app(settings)
    async with serving(app), client_factory(app)() as client:
        openapi = await client.get("/openapi.json")
        assert openapi.status_code == 200
        assert openapi.json()["paths"]
        assert (await client.get("/docs")).status_code == 200


async def test_docs_are_on_outside_production_and_can_be_turned_off(database_url, redis_prefix):
    for docs_enabled, status in ((None, 200), (False, 404)):
        app = create_app(
            make_settings(database_url, redis_prefix, environment="staging", docs_enabled=docs_enabled)
        )
        async with serving(app), client_factory(app)() as client:
            assert (await client.get("/openapi.json")).status_code == status


# --- the one-line refusal of the real entry point ------------------------------------------------------------


async def run_entry_point(argv: list[str], **env: str) -> tuple[int, str]:
    """Runs `argv` from the project root with only `env` (plus PATH): no DATABASE_URL etc."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        with anyio.fail_after(30):
            _, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.communicate()
        raise AssertionError(f"{argv} did not refuse to start") from None
    assert process.returncode is not None
    return process.returncode, stderr.decode()


IMPORT_APP = [sys.executable, "-c", "import app.main"]
UVICORN = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", "0"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "reason"),
    [
        pytest.param({"SECRET_KEY": "weak"}, "SECRET_KEY", id="weak-key"),
        pytest.param({}, "SECRET_KEY", id="missing-key"),
        pytest.param({"SECRET_KEY": EXAMPLE_SECRET_KEY}, "SECRET_KEY", id="example-key"),
        pytest.param(
            {"SECRET_KEY": STRONG_KEY, "COOKIE_SECURE": "false"}, "COOKIE_SECURE", id="insecure-cookies"
        ),
        pytest.param({"SECRET_KEY": STRONG_KEY, "REDIS_URL": ""}, "REDIS_URL", id="no-redis"),
    ],
)
async def test_production_refuses_to_start_with_one_clear_line(env, reason):
    code, stderr = await run_entry_point(
        IMPORT_APP, **{"ENVIRONMENT": "production", "REDIS_URL": REDIS_URL, **env}
    )
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("refusing to start:")
    assert reason in lines[0]
    assert "Traceback" not in stderr


@pytest.mark.slow
async def test_uvicorn_refuses_to_start_in_production_with_a_weak_key_with_one_clear_line():
    code, stderr = await run_entry_point(
        UVICORN, ENVIRONMENT="production", SECRET_KEY="weak", REDIS_URL=REDIS_URL
    )
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("refusing to start:")
    assert "Traceback" not in stderr


@pytest.mark.slow
async def test_unknown_environment_refuses_to_start_without_a_traceback():
    code, stderr = await run_entry_point(IMPORT_APP, ENVIRONMENT="qa")
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("refusing to start:")
    assert "Traceback" not in stderr


# --- CORS_ORIGINS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "https://a.example,https://b.example",
        "https://a.example, https://b.example/ ,",
        '["https://a.example", "https://b.example"]',
        ' [ "https://a.example" , "https://b.example/" ] ',
    ],
    ids=["comma", "comma-spaces-slash", "json", "json-spaces-slash"],
)
def test_cors_origins_accepts_a_comma_list_and_a_json_array(monkeypatch, value):
    monkeypatch.setenv("CORS_ORIGINS", value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]


@pytest.mark.parametrize("value", ["", "[]", " "])
def test_empty_cors_origins_is_an_empty_list(monkeypatch, value):
    monkeypatch.setenv("CORS_ORIGINS", value)
    assert Settings(_env_file=None).cors_origins == []  # type: ignore[call-arg]


def test_single_cors_origin_is_a_list_of_one(monkeypatch):
    monkeypatch.setenv("CORS_ORIGINS", "https://only.example")
    assert Settings(_env_file=None).cors_origins == ["https://only.example"]  # type: ignore[call-arg]


async def test_cors_origins_from_the_environment_are_honoured_by_the_app(
    monkeypatch, database_url, redis_prefix
):
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    base = make_settings(database_url, redis_prefix)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, **base.model_dump(exclude={"cors_origins"})
    )
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    app = create_app(settings)
    async with serving(app), client_factory(app)() as client:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-CSRF-Token",
        }
        allowed = await client.options(f"{API}/items", headers={"Origin": "https://b.example", **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://b.example"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        foreign = await client.options(
            f"{API}/items", headers={"Origin": "https://evil.example", **preflight}
        )
        assert foreign.headers.get("access-control-allow-origin") != "https://evil.example"


# --- FIRST_SUPERUSER_* ---------------------------------------------------------------------------------------


async def wait_for_user(app: FastAPI, email: str) -> None:
    with anyio.fail_after(BOOTSTRAP_WAIT_SECONDS):
        while True:
            async with state_of(app)[SESSIONMAKER]() as session:
                found = await session.scalar(select(User.id).where(func.lower(User.email) == email.lower()))
            if found is not None:
                return
            await asyncio.sleep(0.1)


async def wait_for_bootstrap() -> None:
    """Until the start-up task that ensures the first superuser has finished."""
    with anyio.fail_after(BOOTSTRAP_WAIT_SECONDS):
        while any(
            task.get_coro().__qualname__ == "ensure_first_superuser_eventually"  # type: ignore[union-attr]
            for task in asyncio.all_tasks()
            if not task.done()
        ):
            await asyncio.sleep(0.05)


async def count_users(app: FastAPI, email: str) -> int:
    async with state_of(app)[SESSIONMAKER]() as session:
        statement = select(func.count()).select_from(User).where(func.lower(User.email) == email.lower())
        return int(await session.scalar(statement) or 0)


def bootstrap_problems(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "app.bootstrap" and r.levelname != "INFO"]


@pytest.fixture
def superuser_settings(database_url, redis_prefix) -> tuple[Settings, Account]:
    username = unique("root")
    account = Account(0, f"{username}@example.com", username, PASSWORD)
    settings = make_settings(
        database_url,
        redis_prefix,
        first_superuser_email=account.email,
        first_superuser_username=account.username,
        first_superuser_password=account.password,
    )
    return settings, account


async def test_first_superuser_is_created_at_start_up(superuser_settings):
    settings, account = superuser_settings
    app = create_app(settings)
    async with serving(app), client_factory(app)() as client:
        await wait_for_user(app, account.email)
        response = await login(client, account)
        user = response.json()["user"]
        assert user["email"] == account.email
        assert user["username"] == account.username
        assert user["is_superuser"] is True
        assert user["roles"] == ["user", "admin"]
        me = await client.get(f"{API}/users/me")
        assert me.json()["roles"] == ["user", "admin"]


@pytest.mark.parametrize("email_case", [str.lower, str.upper], ids=["same-email", "email-in-other-case"])
async def test_second_start_does_not_duplicate_or_fail(superuser_settings, caplog, email_case):
    settings, account = superuser_settings
    first = create_app(settings)
    async with serving(first):
        await wait_for_user(first, account.email)
        await wait_for_bootstrap()

    caplog.clear()
    again = settings.model_copy(update={"first_superuser_email": email_case(account.email)})
    second = create_app(again)
    async with serving(second), client_factory(second)() as client:
        await wait_for_bootstrap()
        assert bootstrap_problems(caplog) == []
        assert await count_users(second, account.email) == 1
        await ensure_first_superuser(
            again, state_of(second)[SESSIONMAKER]
        )  # idempotent when called directly too
        assert await count_users(second, account.email) == 1
        response = await login(client, account)
        assert response.json()["user"]["is_superuser"] is True


async def test_first_superuser_is_not_created_when_the_username_is_taken(
    superuser_settings, make_client, caplog
):
    settings, account = superuser_settings
    squatter = make_client()
    await register(squatter, username=account.username.upper(), email=f"other-{account.email}")
    app = create_app(settings)
    async with serving(app):
        await wait_for_bootstrap()
        assert await count_users(app, account.email) == 0
    assert any("taken" in message for message in bootstrap_problems(caplog))


async def test_first_superuser_with_a_weak_password_is_refused_in_production(
    database_url, redis_prefix, caplog
):
    email = f"{unique('weak')}@example.com"
    settings = make_settings(
        database_url,
        redis_prefix,
        environment="production",
        first_superuser_email=email,
        first_superuser_password="password",
    )
    app = create_app(settings)
    async with serving(app):
        await wait_for_bootstrap()
        assert await count_users(app, email) == 0
    assert bootstrap_problems(caplog)


def test_test_settings_secret_is_long_enough_for_production():
    # The fixtures above start production apps with the suite's key.
    assert len(SECRET_KEY) >= 32
