from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    computed_field,
)

from app.schemas import PatchBody

Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=50, pattern=r"^[A-Za-z0-9_.-]+$"),
    Field(description="3 to 50 letters, digits, `_`, `.` or `-`; unique regardless of case."),
]
# The policy (8 to 128 characters) answers 400 `invalid_password`; this bound only
# keeps absurd bodies from reaching the hasher.
Password = Annotated[str, Field(min_length=1, max_length=4096)]


class UserPublic(BaseModel):
    """What anyone may see of a user."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    created_at: datetime


class UserRead(UserPublic):
    """The user as shown to the user itself and to admins."""

    email: str
    is_active: bool
    is_verified: bool
    is_superuser: bool

    @computed_field  # type: ignore[prop-decorator]
    @property
    def roles(self) -> list[str]:
        return ["user", "admin"] if self.is_superuser else ["user"]


class UserCreate(BaseModel):
    """Registration body. Unknown fields (`is_superuser`, `id`, ...) are rejected."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=320)
    username: Username
    password: Password

    # fastapi-users' manager calls these (schemas.CreateUpdateDictModel); the flags
    # are never settable by a client, whichever method it calls.
    def create_update_dict(self) -> dict[str, object]:
        return self.model_dump()

    def create_update_dict_superuser(self) -> dict[str, object]:
        return self.model_dump()


class UserUpdateMe(PatchBody):
    """What a user may change about themselves. `is_superuser`, `is_active` and
    `is_verified` are not fields here, so sending them is a 422."""

    username: Username | None = None
    email: EmailStr | None = Field(None, max_length=320)
    password: Password | None = None
    current_password: Password | None = Field(
        None, description="Required to change `email` or `password`, not for `username` alone."
    )

    def create_update_dict(self) -> dict[str, Any]:
        """The changes, as fastapi-users' manager expects them."""
        return self.model_dump(exclude_unset=True, exclude={"current_password"})


class SessionRead(BaseModel):
    """One login of the user: `id` is not a token and cannot be used as one."""

    id: str
    created_at: datetime
    last_seen_at: datetime
    user_agent: str
    ip: str
    current: bool
