"""Keeps the hot-path user snapshots in the session store true to the database.

Every flush that changes or deletes a User (through fastapi-users, our services or
an admin route alike) schedules, around the commit: drop the snapshot before it
(if the store is down, nothing commits), then write the new one through after it.
A reader that misses the cache reloads from the database and writes with
`only_if_absent`, so it can never overwrite a newer snapshot with an older one.
Bulk `update()`/`delete()` statements bypass this: change users through the ORM.
"""

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, UOWTransaction

from app.auth.principal import SessionUser, snapshot
from app.auth.sessions.types import SessionStore
from app.db import after_commit, before_commit, get_row
from app.models import User

PENDING = "pending_user_snapshots"
# The sessionmaker's `info` key for the store (set by the lifespan, app/main.py): a unit
# of work finds it there, whoever runs it (a request, the command line).
STORE = "session_store"


@event.listens_for(Session, "after_flush")
def _collect_user_changes(session: Session, _flush: UOWTransaction) -> None:
    store: SessionStore | None = session.info.get(STORE)
    if store is None:
        return
    changed = [obj for obj in session.dirty if isinstance(obj, User)]
    deleted = [obj for obj in session.deleted if isinstance(obj, User)]
    if not changed and not deleted:
        return
    pending: dict[int, SessionUser | None] | None = session.info.get(PENDING)
    if pending is None:
        pending = session.info[PENDING] = {}
        _schedule(session, store, pending)
    for user in changed:
        pending[user.id] = snapshot(user)
    for user in deleted:
        pending[user.id] = None


def _schedule(session: Session, store: SessionStore, pending: dict[int, Any]) -> None:
    async def drop_snapshots() -> None:
        for user_id in pending:
            await store.forget_user(user_id)

    async def write_snapshots() -> None:
        session.info.pop(PENDING, None)
        for user_id, user in pending.items():
            if user is None:
                await store.revoke_user(user_id)
            else:
                await store.cache_user(user)

    before_commit(session, drop_snapshots)
    after_commit(session, write_snapshots)


@event.listens_for(Session, "after_soft_rollback")
def _discard_on_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(PENDING, None)


async def load_snapshot(
    sessionmaker: async_sessionmaker[AsyncSession], store: SessionStore, user_id: int
) -> SessionUser | None:
    """Cache miss (a session's or a bearer token's): read the user once and cache it,
    unless a newer snapshot landed meanwhile (`only_if_absent`)."""
    async with sessionmaker() as session:
        user = await get_row(session, User, user_id)
    if user is None:
        return None
    fresh = snapshot(user)
    await store.cache_user(fresh, only_if_absent=True)
    return fresh
