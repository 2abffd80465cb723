"""items at scale: an index per listing order and visibility, trigram search (API.md section 6)

Revision ID: c41d7e2a9f63
Revises: a7c3e1f0b9d2
Create Date: 2026-12-02 19:10:00

The trigram indexes need PostgreSQL's pg_trgm extension. It is created here where the
migrating role may (a superuser, or since PostgreSQL 13 the database's owner: pg_trgm is a
trusted extension). Where it may not, the migration goes on without those two indexes,
says so in a warning, and `q` searches then scan the table: have a superuser run
`CREATE EXTENSION pg_trgm;` in the database, then `alembic downgrade a7c3e1f0b9d2 &&
alembic upgrade head` (or create the two indexes below by hand). Downgrading leaves the
extension installed: other schemas may use it.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError


revision: str = 'c41d7e2a9f63'
down_revision: str | None = 'a7c3e1f0b9d2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

logger = logging.getLogger("alembic.runtime.migration")

PUBLIC = sa.text("is_private = false")
PRIVATE = sa.text("is_private = true")
BTREE = [
    ("ix_item_created_at_id", ["created_at", "id"], None),
    ("ix_item_title_id", ["title", "id"], None),
    ("ix_item_public_created_at", ["created_at", "id"], PUBLIC),
    ("ix_item_public_title", ["title", "id"], PUBLIC),
    ("ix_item_public_id", ["id"], PUBLIC),
    ("ix_item_private_owner_created_at", ["owner_id", "created_at", "id"], PRIVATE),
    ("ix_item_private_owner_title", ["owner_id", "title", "id"], PRIVATE),
    ("ix_item_private_owner_id", ["owner_id", "id"], PRIVATE),
]
TRIGRAM = [("ix_item_title_trgm", "title"), ("ix_item_description_trgm", "description")]


def _trigram_available() -> bool:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first():
        return True
    try:
        with bind.begin_nested():  # a savepoint: a refusal must not abort the migration
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except DBAPIError as exc:
        logger.warning(
            "pg_trgm could not be created (%s): item searches (q) will scan the table. "
            "Ask a superuser to run CREATE EXTENSION pg_trgm; in this database, then re-run "
            "this migration (see its docstring).",
            str(exc.orig).splitlines()[0] if exc.orig else exc,
        )
        return False
    return True


def upgrade() -> None:
    op.drop_index('ix_item_created_at', table_name='item')
    for name, columns, where in BTREE:
        op.create_index(name, 'item', columns, postgresql_where=where, sqlite_where=where)
    if op.get_bind().dialect.name == "postgresql" and _trigram_available():
        for name, column in TRIGRAM:
            op.create_index(
                name, 'item', [column], postgresql_using='gin', postgresql_ops={column: 'gin_trgm_ops'}
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, _column in TRIGRAM:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    for name, _columns, _where in reversed(BTREE):
        op.drop_index(name, table_name='item')
    op.create_index('ix_item_created_at', 'item', ['created_at'], unique=False)
