"""`python -m app` end to end, in subprocesses on the tests' database and Redis prefix."""

import os
import sys
from pathlib import Path

import anyio
import pytest

from tests.conftest import REDIS_URL, SECRET_KEY
from tests.fixtures.client import API, PASSWORD, login, register, unique

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


class Cli:
    def __init__(self, database_url: str, redis_prefix: str, cwd: Path) -> None:
        self.cwd = cwd  # no .env there: the environment below is all the settings
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(ROOT),
            "ENVIRONMENT": "test",
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": redis_prefix,
            "SECRET_KEY": SECRET_KEY,
            "LOG_LEVEL": "info",
        }

    async def __call__(self, *args: str, **env: str) -> tuple[int, str, str]:
        done = await anyio.run_process(
            [sys.executable, "-m", "app", *args],
            cwd=self.cwd,
            env={**self.env, **env},
            check=False,
            stdin=None,
        )
        return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.fixture
def cli(database_url: str, redis_prefix: str, tmp_path: Path) -> Cli:
    return Cli(database_url, redis_prefix, tmp_path)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


async def test_migrate_brings_the_database_to_head(cli):
    code, out, err = await cli("migrate")
    assert code == 0, err
    assert "migrated" in out


async def test_create_superuser_reads_the_password_from_the_environment(cli, make_client):
    username = unique("admin")
    email = f"{username}@example.com"
    code, out, err = await cli(
        "create-superuser", "--email", email, "--username", username, APP_PASSWORD=PASSWORD
    )
    assert code == 0, err
    assert "created superuser" in out
    assert PASSWORD not in out + err
    client = make_client()
    response = await client.post(f"{API}/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    me = (await client.get(f"{API}/users/me")).json()
    assert (me["email"], me["is_superuser"], me["is_verified"]) == (email, True, True)


async def test_create_superuser_refuses_a_weak_password(cli, make_client):
    username = unique("admin")
    code, out, err = await cli(
        "create-superuser",
        "--email",
        f"{username}@example.com",
        "--username",
        username,
        APP_PASSWORD="password",
    )
    assert code == 1
    assert error_lines(err) == ["error: password refused: Password is too common."]
    response = await make_client().post(
        f"{API}/auth/login", json={"username": username, "password": "password"}
    )
    assert response.status_code == 401


async def test_create_superuser_without_a_password_or_a_terminal_fails(cli):
    username = unique("admin")
    code, _, err = await cli("create-superuser", "--email", f"{username}@example.com", "--username", username)
    assert code == 1
    assert error_lines(err) == ["error: no password: set APP_PASSWORD or run in a terminal to be prompted"]


async def test_the_password_is_never_an_argument(cli):
    code, _, err = await cli(
        "create-superuser", "--email", "a@example.com", "--username", "abc", "--password", "x"
    )
    assert code == 2
    assert "unrecognized arguments: --password" in err


async def test_create_superuser_promotes_an_existing_user_and_keeps_their_password(cli, user):
    client, account = user
    code, out, err = await cli(
        "create-superuser",
        "--email",
        account.email,
        "--username",
        account.username,
        APP_PASSWORD="Ignored-but-strong-1",
    )
    assert code == 0, err
    assert "promoted" in out
    # The session's cached user snapshot was rewritten, as after any change to a user.
    assert (await client.get(f"{API}/users/me")).json()["is_superuser"] is True
    await login(client, account)


async def test_revoke_sessions_ends_every_session_of_the_user(cli, make_client):
    devices = [make_client(), make_client()]
    account = await register(devices[0])
    for device in devices:
        await login(device, account)
    bystander = make_client()
    await login(bystander, await register(bystander))

    code, out, err = await cli("revoke-sessions", account.email.upper())
    assert code == 0, err
    assert out.strip() == f"revoked 2 session(s) and 0 token(s) of user {account.id} ({account.username})"
    for device in devices:
        assert (await device.get(f"{API}/users/me")).status_code == 401
    assert (await bystander.get(f"{API}/users/me")).status_code == 200

    # By id and by username too; nothing left to revoke is not an error.
    for identifier in (str(account.id), account.username):
        code, out, err = await cli("revoke-sessions", identifier)
        assert code == 0, err
        assert out.startswith("revoked 0 session(s)")


async def test_revoke_sessions_of_an_unknown_user_fails(cli):
    code, _, err = await cli("revoke-sessions", "nobody-" + unique())
    assert code == 1
    assert len(error_lines(err)) == 1
    assert "no user" in err
