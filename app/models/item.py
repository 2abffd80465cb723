from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, false, true
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow

# PostgreSQL only, made by the migration (alembic/versions/*_items_at_scale.py) where pg_trgm
# can be installed: GIN trigram indexes for the `q` substring search. They are not in the
# metadata (SQLite has no such index), so the migration checks leave them out by name.
TRIGRAM_INDEXES = frozenset({"ix_item_title_trgm", "ix_item_description_trgm"})


def in_metadata(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:  # noqa: ARG001
    """Alembic's `include_object`: what autogenerate compares (all but TRIGRAM_INDEXES)."""
    return not (type_ == "index" and name in TRIGRAM_INDEXES)


class Item(Base):
    """Indexes (API.md section 6, the scale promise): each listing order has one for the
    public items (partial, `is_private = false`), one per owner for their private items
    (what a user sees beyond the public ones), and one over everything (admins). Each ends
    in `id`, the tie-breaker of the keyset pages, so a page is one index range scan."""

    __tablename__ = "item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    is_private: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # ON DELETE CASCADE: deleting a user deletes their items, in the database itself.
    owner_id: Mapped[int] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True, nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)

    __table_args__ = (
        Index("ix_item_created_at_id", created_at, id),
        Index("ix_item_title_id", title, id),
        Index(
            "ix_item_public_created_at",
            created_at,
            id,
            postgresql_where=is_private == false(),
            sqlite_where=is_private == false(),
        ),
        Index(
            "ix_item_public_title",
            title,
            id,
            postgresql_where=is_private == false(),
            sqlite_where=is_private == false(),
        ),
        Index(
            "ix_item_public_id",
            id,
            postgresql_where=is_private == false(),
            sqlite_where=is_private == false(),
        ),
        Index(
            "ix_item_private_owner_created_at",
            owner_id,
            created_at,
            id,
            postgresql_where=is_private == true(),
            sqlite_where=is_private == true(),
        ),
        Index(
            "ix_item_private_owner_title",
            owner_id,
            title,
            id,
            postgresql_where=is_private == true(),
            sqlite_where=is_private == true(),
        ),
        Index(
            "ix_item_private_owner_id",
            owner_id,
            id,
            postgresql_where=is_private == true(),
            sqlite_where=is_private == true(),
        ),
    )
