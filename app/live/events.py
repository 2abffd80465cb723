"""What travels between workers, and what a socket receives.

An item event carries the item as it is after the change and, for an update, as it
was before: the visibility rule of API.md section 6 is then decided per socket from
the event alone, without a query. The previous state is what a viewer who could see
the item, and no longer can, receives as `item.deleted`: never the new content of an
item that just turned private.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app.auth.sessions.types import REVOKED_CHANNEL

ITEMS_CHANNEL = "live:items"  # under the key prefix, like REVOKED_CHANNEL
__all__ = ["ITEMS_CHANNEL", "REVOKED_CHANNEL", "ItemEvent", "ItemEventType", "may_see"]

ItemEventType = Literal["item.created", "item.updated", "item.deleted"]
EVENT_TYPES: frozenset[str] = frozenset({"item.created", "item.updated", "item.deleted"})

# A heartbeat: lets a browser, which cannot see protocol-level pings, tell a quiet
# socket from a dead one (reconnect after about two intervals without any message).
PING = '{"type":"ping"}'


def may_see(item: Mapping[str, Any], user_id: int, is_superuser: bool) -> bool:
    """API.md section 6: public items to everyone, private ones to their owner and admins."""
    return not item["is_private"] or is_superuser or item["owner_id"] == user_id


def _is_item(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("owner_id"), int) and "is_private" in value


@dataclass(frozen=True, slots=True)
class ItemEvent:
    type: ItemEventType
    item: dict[str, Any]  # ItemRead as JSON: after the change (as it was, for a deletion)
    previous: dict[str, Any] | None = None  # updates only: ItemRead as JSON before the change

    def encode(self) -> str:
        return json.dumps(
            {"type": self.type, "item": self.item, "previous": self.previous}, separators=(",", ":")
        )

    @classmethod
    def decode(cls, raw: str | bytes) -> "ItemEvent":
        data = json.loads(raw)
        item, previous = data.get("item"), data.get("previous")
        if (
            data.get("type") not in EVENT_TYPES
            or not _is_item(item)
            or not (previous is None or _is_item(previous))
        ):
            raise ValueError("not an item event")
        return cls(data["type"], item, previous)

    def message(self, type_: ItemEventType, item: dict[str, Any]) -> str:
        """The text frame a socket receives (API.md section 7)."""
        return json.dumps({"type": type_, "item": item}, separators=(",", ":"))
