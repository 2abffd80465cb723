"""Operator commands: `python -m app migrate | create-superuser | revoke-sessions | mfa-reset`.

They run with the service's own settings (DATABASE_URL, REDIS_URL, REDIS_KEY_PREFIX...
from the environment or .env). Exit status 0 on success, 1 with one line on stderr on
failure (2 for a malformed command line, as argparse does everywhere).
"""

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import audit
from app.auth import repository
from app.auth.cache import STORE
from app.auth.mfa import repository as factors
from app.auth.notices import enqueue_notice
from app.auth.passwords import password_problem
from app.auth.schemas import UserCreate
from app.auth.sessions.factory import create_session_store
from app.auth.sessions.types import SessionStore
from app.auth.superusers import create_superuser as add_superuser
from app.auth.tokens import service as tokens
from app.config import Settings, load_settings
from app.db import create_engine, create_sessionmaker, get_row, transaction
from app.logs import configure_logging
from app.models import User
from app.ops.bootstrap import migrate
from app.redis import create_client

logger = logging.getLogger("app.cli")

# The password comes from here or from a prompt, never from an argument: arguments
# are visible to every local user in `ps` and land in shell histories. It is an input
# of one command, not configuration, hence not a Settings field.
PASSWORD_VARIABLE = "APP_PASSWORD"


class CliError(Exception):
    """A failure the operator can act on: its message is the one line printed."""


# ------------------------------------------------------------------ plumbing


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


@asynccontextmanager
async def _database(
    settings: Settings,
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], SessionStore | None]]:
    """A sessionmaker like the server's: with the session store attached (when there is
    Redis), so that a change to a user rewrites its cached snapshot (app/auth/cache.py)
    as in a request."""
    engine = create_engine(settings)
    redis = create_client(settings) if settings.redis_url else None
    store = create_session_store(settings, redis) if redis is not None else None
    try:
        yield create_sessionmaker(engine, **({STORE: store} if store else {})), store
    finally:
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


# ------------------------------------------------------------------ migrate


def run_migrate(settings: Settings) -> None:
    migrate(settings)
    _say("database migrated to head")


# ------------------------------------------------------------------ create-superuser


def read_password(prompt: Callable[[str], str] = getpass.getpass) -> str:
    password = os.environ.get(PASSWORD_VARIABLE)
    if password:
        return password
    if not sys.stdin.isatty():
        raise CliError(f"no password: set {PASSWORD_VARIABLE} or run in a terminal to be prompted")
    password = prompt("Password: ")
    if prompt("Password (again): ") != password:
        raise CliError("the passwords do not match")
    return password


async def create_superuser(settings: Settings, email: str, username: str) -> None:
    """Creates a verified superuser, or promotes the user who has that email already."""
    try:
        fields = UserCreate(email=email, username=username, password="-")
    except ValidationError as exc:
        raise CliError(_validation_line(exc, lambda loc: f"--{loc}")) from None
    email, username = fields.email, fields.username
    if settings.embedded:  # the server migrates its SQLite file at start; so do we
        migrate(settings)
    async with _database(settings) as (sessionmaker, _store), transaction(sessionmaker) as session:
        user = await repository.get_by_login(session, email)
        if user is not None:
            # Promoting is what an operator running this for an existing account wants
            # (and running it twice is harmless); the password is theirs, left alone.
            event = "superuser_promoted" if not user.is_superuser else None
            if event:
                await repository.update(session, user, {"is_superuser": True})
        else:
            if await repository.taken(session, email, username):
                raise CliError(f"username {username!r} is taken by another user")
            password = read_password()
            if problem := password_problem(password, username=username, email=email):
                raise CliError(f"password refused: {problem}")
            event = "superuser_created"
            user = await add_superuser(session, email=email, username=username, password=password)
    # Only once committed.
    if event is None:
        _say(f"user {user.id} ({user.username}) is already a superuser; nothing changed")
        return
    audit(None, event, "success", target=user.id, via="cli")
    if event == "superuser_promoted":
        _say(f"promoted user {user.id} ({user.username}) to superuser; password unchanged")
    else:
        _say(f"created superuser {user.id} ({user.username})")


# ------------------------------------------------------------------ revoke-sessions


async def _find_user(session: AsyncSession, identifier: str) -> User | None:
    # A number is an id; a username of digits only is still found when no id matches.
    if identifier.isdigit() and (user := await get_row(session, User, int(identifier))) is not None:
        return user
    return await repository.get_by_login(session, identifier)


async def revoke_sessions(settings: Settings, identifier: str) -> None:
    if not settings.redis_url:
        raise CliError(
            "REDIS_URL is not set: the embedded session store lives inside the server process; "
            "restart the server to end every session"
        )
    async with _database(settings) as (sessionmaker, store), transaction(sessionmaker) as session:
        assert store is not None
        user = await _find_user(session, identifier)
        if user is None:
            raise CliError(f"no user with id, username or email {identifier!r}")
        # As DELETE /admin/users/{id}/sessions: the personal access tokens go too.
        tokens_revoked = await tokens.revoke_all(session, None, store, user.id, "sessions_revoked")
        count = await store.revoke_user(user.id)
    audit(
        None, "sessions_revoked", "success", target=user.id, revoked=count, tokens=tokens_revoked, via="cli"
    )
    _say(f"revoked {count} session(s) and {tokens_revoked} token(s) of user {user.id} ({user.username})")


# ------------------------------------------------------------------ mfa-reset


async def mfa_reset(settings: Settings, identifier: str) -> None:
    """For a user who lost every second factor (README "Operations" says how to verify the
    person first): their TOTP, recovery codes and passkeys removed, every session ended,
    a notice queued for the service to mail, the action audited. Their password is unchanged."""
    if not settings.redis_url:
        raise CliError("REDIS_URL is not set: the embedded session store lives inside the server process")
    async with _database(settings) as (sessionmaker, store):
        assert store is not None
        async with transaction(sessionmaker) as session:
            user = await _find_user(session, identifier)
            if user is None:
                raise CliError(f"no user with id, username or email {identifier!r}")
            user = await repository.lock(session, user.id)
            assert user is not None
            had = user.mfa_methods
            await factors.delete_all_factors(session, user.id)
            user.mfa_methods = ""
            # Queued with the change; the service's outbox sends it (this process has none).
            enqueue_notice(session, None, user, "mfa_reset")
            # Before the commit: with Redis down nothing changes.
            count = await store.revoke_user(user.id)
    audit(None, "mfa_reset", "success", target=user.id, methods=had.split(), revoked=count, via="cli")
    _say(
        f"removed the second factors ({had or 'none'}) of user {user.id} ({user.username}); revoked {count} session(s)"
    )


# ------------------------------------------------------------------ main


def _validation_line(exc: ValidationError, name: Callable[[str], str]) -> str:
    return "; ".join(
        (f"{name(str(err['loc'][0]))}: " if err["loc"] else "")
        + str(err["msg"]).removeprefix("Value error, ")
        for err in exc.errors()
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m app", description="Operator commands of the service.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("migrate", help="apply the database migrations (alembic upgrade head)")
    create = commands.add_parser(
        "create-superuser",
        help=f"create a superuser (password from {PASSWORD_VARIABLE} or a prompt), or promote the user "
        "with that email",
    )
    create.add_argument("--email", required=True)
    create.add_argument("--username", required=True)
    revoke = commands.add_parser("revoke-sessions", help="end every session of a user")
    revoke.add_argument("user", metavar="USER", help="user id, username or email")
    reset = commands.add_parser(
        "mfa-reset", help="remove every second factor of a user who lost them, and end their sessions"
    )
    reset.add_argument("user", metavar="USER", help="user id, username or email")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValidationError as exc:
        sys.stderr.write(f"error: {_validation_line(exc, str.upper)}\n")
        return 1
    configure_logging(settings)
    try:
        if args.command == "migrate":
            run_migrate(settings)
        elif args.command == "create-superuser":
            asyncio.run(create_superuser(settings, args.email, args.username))
        elif args.command == "mfa-reset":
            asyncio.run(mfa_reset(settings, args.user))
        else:
            asyncio.run(revoke_sessions(settings, args.user))
    except CliError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except (KeyboardInterrupt, EOFError):
        sys.stderr.write("error: interrupted\n")
        return 1
    except Exception as exc:
        # One line for the operator; the traceback at LOG_LEVEL=debug.
        logger.debug("command failed", exc_info=True)
        first_line = (str(exc).strip().splitlines() or [""])[0]
        sys.stderr.write(f"error: {type(exc).__name__}: {first_line}\n")
        return 1
    return 0
