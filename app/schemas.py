"""Shared request-body rules and the page of a listing."""

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

T = TypeVar("T")

# PostgreSQL text cannot hold U+0000: asyncpg refuses the query, which was a 500 (found by
# schemathesis, tests/openapi). Free text that reaches the database refuses it at
# validation instead, a 422 like any other bad input, and the OpenAPI says so.
NO_NUL = r"^[^\x00]*$"


def _omittable_not_nullable(schema: dict[str, Any]) -> None:
    """The JSON schema of a PatchBody says what its validator does: a field may be omitted,
    never null. Pydantic derives `anyOf: [..., {"type": "null"}]` with `default: null` from
    the `X | None = None` annotations, which told a generated client that null was fine."""
    for field in schema.get("properties", {}).values():
        options = field.get("anyOf")
        if not isinstance(options, list) or {"type": "null"} not in options:
            continue
        kept = [option for option in options if option != {"type": "null"}]
        del field["anyOf"]
        field.pop("default", None)
        if len(kept) == 1:
            field.update({**kept[0], **field})
        else:
            field["anyOf"] = kept


class PatchBody(BaseModel):
    """A partial update: unknown fields are a 422, every field may be omitted, and
    none may be null (null would otherwise read as "unchanged", or reach a NOT NULL column)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_omittable_not_nullable)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(key for key, value in data.items() if value is None)
            if nulls:
                raise ValueError(f"fields may be omitted but not null: {', '.join(nulls)}")
        return data

    def changes(self) -> dict[str, Any]:
        """The fields the client sent."""
        return self.model_dump(exclude_unset=True)


class Page(BaseModel, Generic[T]):
    """One page of a listing: `total` counts every match, whatever `limit` and `offset`."""

    items: list[T]
    total: int = Field(
        description="Everything matching the filter that the caller may see, whatever `limit` and `offset`."
    )
    limit: int
    offset: int
