"""Keyset cursors of the items listing (API.md section 6): opaque, tamper-evident, bound to
the listing they came from.

A cursor names the last item of a page by its sort key and id (ties on the key are broken
by id, so no item is skipped or repeated), and the `sort` and `q` it was made for: passed
back with another `sort` or `q` it is refused (422), like a forged or truncated one. It is
itsdangerous-signed with a key of its own (salt), not encrypted: what it holds (a title,
a timestamp, an id) is what the page already showed.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from itsdangerous import BadData, URLSafeSerializer

from app.errors import invalid_query
from app.items.schemas import ItemSort
from app.state import Key

MAX_CURSOR_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class After:
    """Where the next page starts: strictly after (key, id) in the listing's order."""

    key: Any  # datetime, str, or None for the id sorts
    id: int


def _listing(sort: ItemSort, q: str | None) -> str:
    return hashlib.sha256(f"{sort.value}\x00{q or ''}".encode()).hexdigest()[:16]


class Cursors:
    def __init__(self, secret_key: str) -> None:
        self.serializer = URLSafeSerializer(secret_key, salt="items-cursor")

    def after(self, item: Mapping[Any, Any], sort: ItemSort, q: str | None) -> str:
        """The cursor of the page that follows `item` (a row of the listing)."""
        if sort in (ItemSort.CREATED_AT, ItemSort.CREATED_AT_DESC):
            key: Any = item["created_at"].isoformat()
        elif sort in (ItemSort.TITLE, ItemSort.TITLE_DESC):
            key = item["title"]
        else:
            key = None
        return str(self.serializer.dumps([_listing(sort, q), key, item["id"]]))

    def read(self, cursor: str, sort: ItemSort, q: str | None) -> After:
        try:
            listing, key, item_id = self.serializer.loads(cursor)
        except (BadData, ValueError, TypeError):
            raise invalid_query("cursor", "not a cursor this listing issued") from None
        if listing != _listing(sort, q):
            raise invalid_query("cursor", "the cursor belongs to another sort or q")
        if not isinstance(item_id, int):
            raise invalid_query("cursor", "not a cursor this listing issued")
        if sort in (ItemSort.CREATED_AT, ItemSort.CREATED_AT_DESC):
            try:
                key = datetime.fromisoformat(key)
            except (TypeError, ValueError):
                raise invalid_query("cursor", "not a cursor this listing issued") from None
        return After(key, item_id)


CURSORS: Key[Cursors] = Key("item_cursors")
