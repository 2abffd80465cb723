"""What the /users routes read and return besides the user itself (app/auth/schemas.py)."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, EmailStr, Field

from app.auth.schemas import Password, Username
from app.schemas import PatchBody


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
    aal: int = Field(
        description="1: a password alone; 2: with a second factor, or a passkey (API.md section 9)."
    )
    amr: list[str] = Field(description="How it was authenticated: pwd, otp, recovery_code, webauthn.")
