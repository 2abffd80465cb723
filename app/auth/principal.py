"""Who is calling: the types every domain uses for "the current user".

Small on purpose: a domain that only needs to know its caller imports this, not the
session store, Redis or fastapi-users.
"""

import json
from dataclasses import asdict, dataclass
from datetime import datetime

from app.models import User


@dataclass(frozen=True, slots=True)
class SessionUser:
    """What a request needs to know about its user: a snapshot served from the session
    store with the session itself (no database query), kept true by app/auth/cache.py."""

    id: int
    email: str
    username: str
    is_active: bool
    is_superuser: bool
    is_verified: bool
    created_at: datetime

    def dumps(self) -> str:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str) -> "SessionUser":
        data = json.loads(raw)
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Principal:
    user: SessionUser
    login_id: str  # the login this session belongs to (what /users/me/sessions lists)


def snapshot(user: User) -> SessionUser:
    return SessionUser(
        id=user.id,
        email=user.email,
        username=user.username,
        is_active=user.is_active,
        is_superuser=user.is_superuser,
        is_verified=user.is_verified,
        created_at=user.created_at,
    )
