"""security log: the security_event table (API.md section 10)

Revision ID: e5b8d2f47a19
Revises: c41d7e2a9f63
Create Date: 2026-12-02 21:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'e5b8d2f47a19'
down_revision: str | None = 'c41d7e2a9f63'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('security_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=256), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_security_event_user_id_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_event'))
    )
    op.create_index('ix_security_event_user_id_created_at_id', 'security_event', ['user_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_security_event_created_at', 'security_event', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_security_event_created_at', table_name='security_event')
    op.drop_index('ix_security_event_user_id_created_at_id', table_name='security_event')
    op.drop_table('security_event')
