"""The user as auth shows it (register, login; every domain that returns a user) and the
bodies of the session routes."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, computed_field

from app.schemas import NO_NUL

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


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(
        min_length=1, max_length=320, pattern=NO_NUL, description="Username or email, any case."
    )
    password: str = Field(min_length=1, max_length=4096)


class CsrfRead(BaseModel):
    csrf_token: str


class LoginRead(BaseModel):
    user: UserRead
    csrf_token: str = Field(description="The value of the CSRF cookie set with this response.")
    expires_in: int = Field(description="Lifetime of the session in seconds.")


class Detail(BaseModel):
    detail: str


class RefreshRead(BaseModel):
    csrf_token: str = Field(description="The value of the CSRF cookie set with this response.")
    expires_in: int = Field(description="Lifetime of the new session in seconds.")


class ReportLogin(BaseModel):
    token: str = Field(min_length=1, max_length=128)
