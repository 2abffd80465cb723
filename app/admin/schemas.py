from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

from app.users.schemas import Password, Username, UserRead


class AdminUserUpdate(BaseModel):
    """What an admin may change about any user; omitted fields stay as they are."""

    # Unknown fields (`id`, `hashed_password`, ...) are a 422, never silently dropped.
    model_config = ConfigDict(extra="forbid")

    email: EmailStr | None = Field(None, max_length=320, description="A new email is unverified.")
    username: Username | None = None
    password: Password | None = Field(None, description="Ends every session of the user.")
    is_active: bool | None = Field(None, description="`false` ends every session of the user.")
    is_superuser: bool | None = Field(None, description="`false` ends every session of the user.")
    is_verified: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        # null would otherwise read as "unchanged", or reach a NOT NULL column.
        if isinstance(data, dict):
            nulls = sorted(key for key, value in data.items() if value is None)
            if nulls:
                raise ValueError(f"fields may be omitted but not null: {', '.join(nulls)}")
        return data

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)

    # fastapi-users' manager calls one of these (schemas.CreateUpdateDictModel); an
    # admin may set every field here, so both are the same.
    def create_update_dict(self) -> dict[str, Any]:
        return self.changes()

    def create_update_dict_superuser(self) -> dict[str, Any]:
        return self.changes()


class AdminUserPage(BaseModel):
    items: list[UserRead]
    total: int = Field(description="Users matching the filter, whatever `limit` and `offset`.")
    limit: int
    offset: int
