from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ProviderRead(BaseModel):
    name: str = Field(description="Use it in `/auth/oidc/{name}/authorize`.")


class IdentityRead(BaseModel):
    """An identity at a provider linked to the account; holds no secret."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    provider: str
    subject: str = Field(description="The provider's `sub` for the user.")
    email: str | None = Field(description="The email the provider gave when the identity was linked.")
    created_at: datetime
