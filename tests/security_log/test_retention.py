"""SECURITY_LOG_RETENTION_DAYS: events older than it are deleted, in batches; newer ones stay."""

from datetime import timedelta

from sqlalchemy import insert, select

from app.db import SESSIONMAKER, utcnow
from app.models import SecurityLogEntry
from app.security_log import service
from app.state import state_of
from tests.conftest import make_settings
from tests.fixtures.client import register


async def test_pruning_deletes_the_events_past_retention_and_keeps_the_rest(app, client):
    account = await register(client)
    sessionmaker = state_of(app)[SESSIONMAKER]
    now = utcnow()
    ages = {"ancient": 800, "old": 400, "just_past": 366, "recent": 364, "today": 0}
    async with sessionmaker() as session:
        await session.execute(
            insert(SecurityLogEntry),
            [
                {
                    "user_id": account.id,
                    "event": "login",
                    "created_at": now - timedelta(days=days),
                    "details": {"age": name},
                }
                for name, days in ages.items()
            ],
        )
        await session.commit()

    deleted = await service.prune(sessionmaker, 365, now=now, batch=2)  # two batches and a short one

    assert deleted >= 3
    async with sessionmaker() as session:
        rows = await session.scalars(select(SecurityLogEntry).where(SecurityLogEntry.user_id == account.id))
        assert sorted(row.details["age"] for row in rows if row.details) == ["recent", "today"]


def test_the_retention_is_a_setting_of_a_year_by_default(database_url, redis_prefix):
    assert make_settings(database_url, redis_prefix).security_log_retention_days == 365
    assert (
        make_settings(database_url, redis_prefix, security_log_retention_days=30).security_log_retention_days
        == 30
    )
