"""Shared request-body rules."""

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class PatchBody(BaseModel):
    """A partial update: unknown fields are a 422, every field may be omitted, and
    none may be null (null would otherwise read as "unchanged", or reach a NOT NULL column)."""

    model_config = ConfigDict(extra="forbid")

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
