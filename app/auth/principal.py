"""Who is calling: the types every domain uses for "the current user".

Small on purpose: a domain that only needs to know its caller imports this, not the
session store, Redis or fastapi-users.
"""

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime

from app.errors import AppError, ErrorCode
from app.models import User

SECOND_FACTORS = frozenset({"totp", "webauthn"})


def has_second_factor(methods: Iterable[str]) -> bool:
    """TOTP enabled or a passkey registered (API.md section 9); recovery codes alone are not one."""
    return not SECOND_FACTORS.isdisjoint(methods)


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
    # The second-factor methods the user has (User.mfa_methods): "totp", "webauthn",
    # "recovery_code". Empty for a user with a password alone.
    mfa_methods: tuple[str, ...] = field(default=())

    @property
    def has_second_factor(self) -> bool:
        return has_second_factor(self.mfa_methods)

    def dumps(self) -> str:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str) -> "SessionUser":
        data = json.loads(raw)
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        data["mfa_methods"] = tuple(data.get("mfa_methods", ()))
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Assurance:
    """How a login was authenticated (API.md section 9): `aal` 1 for a password alone, 2
    with a second factor or a passkey with user verification; `amr` the methods used
    (RFC 8176 names: pwd, otp, webauthn, ...); `auth_time` when a factor was last presented
    (login, second factor, re-authentication; never a refresh). Kept in the login's record,
    so a refresh carries it over and reading it costs no extra round trip."""

    aal: int
    amr: tuple[str, ...]
    auth_time: float

    @classmethod
    def password(cls) -> "Assurance":
        return cls(1, ("pwd",), time.time())

    def presented(self, method: str, *, aal: int) -> "Assurance":
        """This login after `method` (an amr value) was presented now, at `aal`."""
        return Assurance(aal, tuple(dict.fromkeys((*self.amr, method))), time.time())

    def encode_amr(self) -> str:
        return " ".join(self.amr)

    @staticmethod
    def decode_amr(raw: str | None) -> tuple[str, ...]:
        return tuple(raw.split()) if raw else ()


@dataclass(frozen=True, slots=True)
class Principal:
    user: SessionUser
    login_id: str  # the login this session belongs to (what /users/me/sessions lists)
    assurance: Assurance
    # A personal access token's scopes (app/auth/tokens); None for a session.
    scopes: frozenset[str] | None = None

    def fresh(self, max_age: int) -> bool:
        """API.md section 9: a factor presented at most `max_age` seconds ago, and a second
        one among them for a user who has a second factor. A refresh never makes a session
        fresh: it does not move auth_time."""
        recent = time.time() - self.assurance.auth_time <= max_age
        return recent and (self.assurance.aal >= 2 or not self.user.has_second_factor)

    def reauthentication_methods(self) -> list[str]:
        """What the user can re-authenticate with (`details.methods` of 403
        `reauthentication_required`): their second factors, or the password without one."""
        return list(self.user.mfa_methods) if self.user.has_second_factor else ["password"]

    def require_fresh(self, max_age: int) -> None:
        """403 `reauthentication_required` unless fresh, naming what to re-authenticate with."""
        if not self.fresh(max_age):
            raise AppError(
                ErrorCode.REAUTHENTICATION_REQUIRED, details={"methods": self.reauthentication_methods()}
            )


def snapshot(user: User) -> SessionUser:
    return SessionUser(
        id=user.id,
        email=user.email,
        username=user.username,
        is_active=user.is_active,
        is_superuser=user.is_superuser,
        is_verified=user.is_verified,
        created_at=user.created_at,
        mfa_methods=tuple((user.mfa_methods or "").split()),
    )
