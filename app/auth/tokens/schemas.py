"""The bodies of /users/me/tokens (API.md section 11)."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.auth.tokens import Scope


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=64, description="What the token is for, to recognise it later."
    )
    # An unknown scope is 422 (the enum), an empty list too: a token that can do nothing.
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    expires_in_days: int = Field(30, ge=1, le=365)

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        value = value.strip()
        if not value or not value.isprintable():
            raise ValueError("must be printable text")
        return value


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None

    @field_validator("scopes", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return value.split() if isinstance(value, str) else value


class TokenCreated(TokenRead):
    token: str = Field(description="The token itself: shown this once, stored only as a hash.")
