"""The migrations against the models, on both backends the app runs on.

On an empty database of its own (PostgreSQL, and a SQLite file like the embedded
default), `upgrade head`, `downgrade base` (nothing left but alembic_version),
`upgrade head` again, and then Alembic's autogenerate comparison must find no
difference between `app.db.Base.metadata` and what the migrations built: a model
change without its revision fails here, not at deployment. The case-insensitive
unique indexes behind 409 `user_already_exists` are checked by behaviour.

Alembic's env.py calls asyncio.run, so every Alembic command runs in a worker
thread (anyio.to_thread.run_sync), away from the test's event loop.
"""

import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.exc import IntegrityError, SAWarning
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from alembic import command
from app.db import Base, utcnow
from app.models import Item, User
from app.models.item import TRIGRAM_INDEXES, in_metadata
from app.ops.bootstrap import alembic_config
from tests.conftest import TEST_DATABASE, drop_database, recreate_database

# Beside the run's own test database: two runs on other TEST_DATABASEs never share it.
DATABASE = f"{TEST_DATABASE}_migrations"
APP_TABLES = {
    "user",
    "item",
    "totp_secret",
    "recovery_code",
    "passkey",
    "security_event",
    "mail_outbox",
    "known_device",
    "account_token",
    "access_token",
    "oidc_identity",
}
LOWER_INDEXES = {"uq_user_email_lower": "email", "uq_user_username_lower": "username"}


async def upgrade(config: Config) -> None:
    await anyio.to_thread.run_sync(command.upgrade, config, "head")


async def downgrade(config: Config) -> None:
    await anyio.to_thread.run_sync(command.downgrade, config, "base")


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


def _diff(connection: Connection) -> list[Any]:
    # The options alembic/env.py passes, so this sees what `make revision` would.
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": in_metadata}
    )
    with warnings.catch_warnings():
        if connection.dialect.name == "sqlite":
            # SQLite's reflection cannot see expression indexes (lower(email)), so
            # SQLAlchemy and Alembic warn and leave them out of the comparison;
            # test_lower_unique_indexes checks them on SQLite by behaviour instead.
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression", SAWarning)
            warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified", UserWarning)
        return compare_metadata(context, Base.metadata)


async def model_diff(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return await connection.run_sync(_diff)


@pytest.fixture(params=["postgresql", "sqlite"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The SQLAlchemy URL of an empty database: a scratch PostgreSQL one, or a SQLite
    file as the embedded default uses (no DATABASE_URL)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
        return
    url = await recreate_database(DATABASE)
    try:
        yield url.replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        await drop_database(DATABASE)


@pytest.fixture
async def engine(empty_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(empty_database)
    yield engine
    await engine.dispose()


async def test_upgrade_downgrade_upgrade_matches_models(empty_database: str, engine: AsyncEngine) -> None:
    config = alembic_config(empty_database)
    assert await table_names(engine) == set()

    await upgrade(config)
    assert await table_names(engine) == APP_TABLES | {"alembic_version"}

    await downgrade(config)
    assert await table_names(engine) == {"alembic_version"}

    await upgrade(config)
    assert await table_names(engine) == APP_TABLES | {"alembic_version"}

    diff = await model_diff(engine)
    assert diff == [], f"models and migrations disagree (a revision is missing?): {diff}"


def _user(email: str, username: str) -> dict[str, object]:
    return {
        "email": email,
        "username": username,
        "hashed_password": "not-a-hash",
        "is_active": True,
        "is_superuser": False,
        "is_verified": False,
        "created_at": utcnow(),
    }


async def test_lower_unique_indexes(empty_database: str, engine: AsyncEngine) -> None:
    await upgrade(alembic_config(empty_database))

    async with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = await connection.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'user'")
            )
            found = {name: sql for name, sql in rows if name in LOWER_INDEXES}
        else:
            indexes = await connection.run_sync(lambda sync: inspect(sync).get_indexes("user"))
            found = {i["name"]: " ".join(i.get("expressions") or []) for i in indexes if i["unique"]}
    for name, column in LOWER_INDEXES.items():
        assert name in found, f"unique index {name} missing: {found}"
        assert "lower(" in found[name].lower(), found[name]
        assert column in found[name], found[name]

    table = Base.metadata.tables[User.__tablename__]
    async with engine.begin() as connection:
        await connection.execute(table.insert(), [_user("Alice@Example.com", "Alice")])
    for email, username in (("alice@example.COM", "someone-else"), ("other@example.com", "ALICE")):
        with pytest.raises(IntegrityError):
            async with engine.begin() as connection:
                await connection.execute(table.insert(), [_user(email, username)])
    async with engine.connect() as connection:
        assert (await connection.execute(select(table.c.username))).scalars().all() == ["Alice"]


async def test_item_search_indexes_on_postgresql(empty_database: str, engine: AsyncEngine) -> None:
    """The trigram indexes behind `q` (PostgreSQL only; SQLite scans), and every listing
    index, made by upgrade and gone with downgrade."""
    config = alembic_config(empty_database)
    await upgrade(config)

    def index_names(sync: Connection) -> set[str]:
        return {index["name"] for index in inspect(sync).get_indexes("item")}

    async with engine.connect() as connection:
        names = await connection.run_sync(index_names)
    listing = {index.name for index in Item.__table__.indexes}
    assert listing <= names
    if engine.dialect.name == "postgresql":
        assert names >= TRIGRAM_INDEXES
    else:
        assert not names & TRIGRAM_INDEXES
    await downgrade(config)
    await upgrade(config)
    async with engine.connect() as connection:
        assert await connection.run_sync(index_names) >= listing
