"""The services' side: announce an item change once, and only once, it is committed.

The broadcaster rides in the session's `info` (set on the sessionmaker in the
lifespan, next to the session store that app/auth/cache.py finds the same way), so a
service needs neither FastAPI nor a global: the unit of work carries its own side
effects. A session made without one (a script, a test's own sessionmaker) publishes
nothing.
"""

from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.items.schemas import ItemRead
from app.live.events import ItemEvent, ItemEventType

if TYPE_CHECKING:
    from app.live.broadcast import Broadcaster
    from app.models import Item

BROADCASTER = "live_broadcaster"


def snapshot(item: "Item") -> dict[str, Any]:
    return ItemRead.model_validate(item).model_dump(mode="json")


def item_changed(
    session: AsyncSession, type_: ItemEventType, item: "Item", *, previous: dict[str, Any] | None = None
) -> None:
    """After the commit (never on rollback), publish `type_` for `item`. `previous` is
    the item's `snapshot` before an update, which decides who loses sight of it."""
    broadcaster: Broadcaster | None = session.info.get(BROADCASTER)
    if broadcaster is None:
        return
    # A deleted item is read now, while it is still a loaded object; the others after
    # the commit, so that the event shows exactly what was committed.
    deleted = snapshot(item) if type_ == "item.deleted" else None

    async def publish() -> None:
        await broadcaster.publish_item(ItemEvent(type_, deleted or snapshot(item), previous))

    after_commit(session, publish)
