"""Device cookies (API.md section 3): OWASP's defence against account lockout.

https://owasp.org/www-community/Slow_Down_Online_Guessing_Attacks_with_Device_Cookies

The per-account login limit stops a guesser trying many passwords against one account,
but it also locks the owner out: anyone can spend the account's budget with wrong
passwords. A device cookie, set at each successful login and remembered for the account
(hashed, app/models/account.py), tells the owner's own browser apart: a login presenting
one that this account has logged in with is exempt from the per-account limit, and is
counted per device cookie instead (and per address, as every login). A guesser has no
such cookie, so the lockout they cause falls on them alone.

The cookie's value is minted here (256 random bits, signed so that a value we never issued
is not even looked up); a valid one presented to a login of another account on the same
browser is kept and remembered for that account too (one browser, several accounts).
"""

import hashlib
import secrets

from itsdangerous import BadSignature, Signer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.auth.account import repository
from app.cookie_header import cookies_of
from app.db import transaction, utcnow
from app.state import Key

MAX_COOKIE_LENGTH = 128


class DeviceCookies:
    def __init__(self, secret_key: str, name: str) -> None:
        self.signer = Signer(secret_key, salt="device-cookie")
        self.name = name  # __Host-device, or device without COOKIE_SECURE

    def presented(self, request: HTTPConnection) -> str | None:
        """The request's device cookie when it is one we issued."""
        return self.valid(cookies_of(request.scope).get(self.name))

    def mint(self) -> str:
        return self.signer.sign(secrets.token_urlsafe(32)).decode()

    def valid(self, cookie: str | None) -> str | None:
        """The cookie when it is one we issued, else None (absent, foreign, tampered)."""
        if not cookie or len(cookie) > MAX_COOKIE_LENGTH:
            return None
        try:
            self.signer.unsign(cookie)
        except BadSignature:
            return None
        return cookie


DEVICES: Key[DeviceCookies] = Key("device_cookies")


def digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


async def is_known(sessionmaker: async_sessionmaker[AsyncSession], user_id: int, cookie: str) -> bool:
    """Whether this account has logged in with this cookie, in a unit of work of its own
    (read before the password is hashed: no connection is held while it is)."""
    async with transaction(sessionmaker) as session:
        return await is_known_in(session, user_id, cookie)


async def is_known_in(session: AsyncSession, user_id: int, cookie: str) -> bool:
    return await repository.device_known(session, user_id, digest(cookie))


async def remember(session: AsyncSession, user_id: int, cookie: str) -> None:
    """The cookie is known for the account from now on (its last login now, if it was)."""
    await repository.remember_device(session, user_id, digest(cookie), utcnow())
