from typing import Any

from pydantic import EmailStr, Field

from app.auth.schemas import Password, Username
from app.schemas import PatchBody


class AdminUserUpdate(PatchBody):
    """What an admin may change about any user; omitted fields stay as they are."""

    email: EmailStr | None = Field(None, max_length=320, description="A new email is unverified.")
    username: Username | None = None
    password: Password | None = Field(None, description="Ends every session of the user.")
    is_active: bool | None = Field(None, description="`false` ends every session of the user.")
    is_superuser: bool | None = Field(None, description="`false` ends every session of the user.")
    is_verified: bool | None = None

    # fastapi-users' manager calls one of these (schemas.CreateUpdateDictModel); an
    # admin may set every field here, so both are the same.
    def create_update_dict(self) -> dict[str, Any]:
        return self.changes()

    def create_update_dict_superuser(self) -> dict[str, Any]:
        return self.changes()
