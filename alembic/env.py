"""Async Alembic environment: the same migrations run on PostgreSQL and SQLite."""

import asyncio
from logging.config import fileConfig
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import app.models  # noqa: F401  (registers every table on Base.metadata)
from alembic import context
from app.config import load_settings
from app.db import Base, UTCDateTime
from app.models.item import in_metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)

target_metadata = Base.metadata
# Any constant of our own: pg_advisory_xact_lock's key space is per database.
MIGRATION_LOCK_KEY = 0x61707000


def database_url() -> str:
    # Set by app.bootstrap.alembic_config (start-up, tests); otherwise the environment.
    return config.get_main_option("sqlalchemy.url") or load_settings().sqlalchemy_url


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:  # noqa: ARG001
    # Render our TypeDecorator as the plain type, so revisions never import app code.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=render_item,
        compare_type=True,
        include_object=in_metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Replicas starting together take turns: the lock is held until this
            # transaction (the whole upgrade: PostgreSQL's DDL is transactional) commits,
            # and the next one then reads the new version and has nothing to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def run_async_migrations() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        do_run_migrations(connectable)
        return
    engine = create_async_engine(database_url())
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(), target_metadata=target_metadata, literal_binds=True, render_item=render_item
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
