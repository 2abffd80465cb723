"""The services' side: announce a change once, and only once, it is committed.

The payload is the item as the HTTP API shows it, made by the domain that owns it: this
package knows the events of API.md section 7, not the items' tables or schemas. The
broadcaster rides in the session's `info` (set on the sessionmaker by the lifespan, next
to the session store that app/auth/cache.py finds the same way), so a service needs
neither FastAPI nor a global: the unit of work carries its own side effects. A session
made without one (a script, a test's own sessionmaker) publishes nothing.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.live.events import ItemEvent, ItemEventType

if TYPE_CHECKING:
    from app.live.broadcast import Broadcaster

BROADCASTER = "live_broadcaster"
Payload = dict[str, Any]


def announce(
    session: AsyncSession,
    type_: ItemEventType,
    item: Payload | Callable[[], Payload],
    *,
    previous: Payload | None = None,
) -> None:
    """After the commit (never on rollback), publish `type_` for `item`: the payload, or a
    function making it then, so that the event shows exactly what was committed.
    `previous` is the payload before an update, which decides who loses sight of it."""
    broadcaster: Broadcaster | None = session.info.get(BROADCASTER)
    if broadcaster is None:
        return

    async def publish() -> None:
        payload = item() if callable(item) else item
        await broadcaster.publish_item(ItemEvent(type_, payload, previous))

    after_commit(session, publish)
