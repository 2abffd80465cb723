from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints

from app.schemas import NO_NUL, PatchBody

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL)]
Description = Annotated[str, StringConstraints(max_length=10000, pattern=NO_NUL)]
PRIVATE = Field(
    validation_alias=AliasChoices("is_private", "private"),
    description="Private items are visible to their owner and admins only. Alias: `private`.",
)


class ItemCreate(BaseModel):
    # Unknown fields (`owner_id`, `id`, ...) are a 422, never silently dropped.
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description = ""
    is_private: bool = Field(
        False, validation_alias=PRIVATE.validation_alias, description=PRIVATE.description
    )


class ItemUpdate(PatchBody):
    """Every field optional; a field sent as null is refused rather than read as 'unchanged'."""

    title: Title | None = None
    description: Description | None = None
    is_private: bool | None = Field(
        None, validation_alias=PRIVATE.validation_alias, description=PRIVATE.description
    )


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    description: str
    is_private: bool
    owner_id: int
    created_at: datetime
    updated_at: datetime


class ItemSort(StrEnum):
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    TITLE = "title"
    TITLE_DESC = "-title"
    ID = "id"
    ID_DESC = "-id"


class ItemPage(BaseModel):
    """One page of items (API.md section 6)."""

    items: list[ItemRead]
    total: int = Field(
        description="The matching items the caller may see: exact up to 10,000, then 10,000 with `total_capped`."
    )
    total_capped: bool = Field(description='More than 10,000 match (a client shows "10,000+").')
    limit: int
    offset: int | None = Field(description="null for a page fetched by `cursor`.")
    next_cursor: str | None = Field(
        description="Pass back as `cursor` (same `q`, `sort`, `limit`, no `offset`) for the next page; null on the last."
    )
