from pydantic import BaseModel, ConfigDict, Field

from app.schemas import NO_NUL
from app.users.schemas import UserRead


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
