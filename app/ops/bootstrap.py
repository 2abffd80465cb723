"""Start-up work that needs the database: embedded migrations and the first superuser."""

import asyncio
import logging
from pathlib import Path

from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alembic import command
from app.auth import repository
from app.auth.passwords import password_problem
from app.auth.superusers import create_superuser
from app.config import Settings
from app.db import transaction

logger = logging.getLogger("app.bootstrap")  # the name operators filter on, kept from before app/ops

ROOT = Path(__file__).resolve().parents[2]  # the repository: alembic.ini, alembic/
RETRY_SECONDS = 5.0


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def migrate(settings: Settings) -> None:
    """`alembic upgrade head` (blocking: call it from a thread or before the loop starts)."""
    if settings.embedded:  # a fresh checkout has no data/ folder yet
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings.sqlalchemy_url), "head")


async def ensure_first_superuser(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    email, username, password = (
        settings.first_superuser_email,
        settings.first_superuser_username,
        settings.first_superuser_password,
    )
    if not (email and password):
        return
    username = username or email.partition("@")[0]
    problem = password_problem(password, username=username, email=email)
    if problem and settings.environment == "production":
        logger.error("FIRST_SUPERUSER_PASSWORD refused (%s); no superuser created", problem)
        return
    if problem:
        logger.warning(
            "FIRST_SUPERUSER_PASSWORD is weak (%s); create a strong one before production", problem
        )
    async with transaction(sessionmaker) as session:
        if await repository.get_by_login(session, email) is not None:
            return
        if await repository.taken(session, email, username):
            logger.error(
                "FIRST_SUPERUSER_USERNAME %r is taken by another user; no superuser created", username
            )
            return
        await create_superuser(session, email=email, username=username, password=password)
    logger.info("first superuser created", extra={"event": "first_superuser_created"})


async def ensure_first_superuser_eventually(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Retries while the database is down, so that start-up never waits for it."""
    while True:
        try:
            await ensure_first_superuser(settings, sessionmaker)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("first superuser not ensured yet (%s); retrying", type(exc).__name__)
            await asyncio.sleep(RETRY_SECONDS)
