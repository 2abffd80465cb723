from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class SecurityEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event: str
    created_at: datetime
    ip: str | None
    user_agent: str | None
    details: dict[str, Any] | None
