"""What the /users routes read and return besides the user itself (app/auth/schemas.py)."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, EmailStr, Field

from app.auth.mfa.schemas import PasskeyRead
from app.auth.oidc.schemas import IdentityRead
from app.auth.schemas import Password, Username, UserRead
from app.auth.sessions.types import LoginInfo
from app.auth.tokens.schemas import TokenRead
from app.items.schemas import ItemRead
from app.schemas import PatchBody
from app.security_log.schemas import SecurityEventRead


class UserUpdateMe(PatchBody):
    """What a user may change about themselves. `email` (POST /users/me/email),
    `is_superuser`, `is_active` and `is_verified` are not fields here: sending them is a 422."""

    username: Username | None = None
    password: Password | None = None
    current_password: Password | None = Field(
        None, description="Required to change the `password`, not for `username` alone."
    )

    def create_update_dict(self) -> dict[str, Any]:
        """The changes, as fastapi-users' manager expects them."""
        return self.model_dump(exclude_unset=True, exclude={"current_password"})


class EmailChange(BaseModel):
    email: EmailStr = Field(max_length=320)
    current_password: Password


class EmailChangePending(BaseModel):
    detail: str
    pending_email: str


class EmailChangeConfirm(BaseModel):
    token: str = Field(min_length=1, max_length=128)


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


def session_reads(logins: list[LoginInfo], current_login_id: str | None) -> list[SessionRead]:
    return [
        SessionRead(
            id=login.id,
            created_at=login.created_at,
            last_seen_at=login.last_seen_at,
            user_agent=login.user_agent,
            ip=login.ip,
            current=login.id == current_login_id,
            aal=login.aal,
            amr=list(login.amr),
        )
        for login in logins
    ]


class AccountExport(BaseModel):
    """GET /users/me/export (API.md section 10): no hash, secret or token in it."""

    user: UserRead
    items: list[ItemRead]
    sessions: list[SessionRead]
    passkeys: list[PasskeyRead]
    identities: list[IdentityRead] = Field(description="Identities at sign-in providers (API.md section 11).")
    tokens: list[TokenRead] = Field(
        description="Personal access tokens: their names and scopes, never a token."
    )
    security_events: list[SecurityEventRead]
    exported_at: datetime
