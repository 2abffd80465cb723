"""A sign-in under way: what the authorization request was bound to, kept server-side.

The browser holds only a random cookie (`__Secure-oidc`, Path=/api/v1/auth/oidc,
SameSite=Lax so that it comes back with the provider's redirect); the store (Redis, or
memory on the embedded default) holds, under a hash of it, the state, nonce and PKCE
verifier, where to go next, the device cookie the browser had (it is SameSite=Strict, so
the provider's redirect does not carry it), and, for a link, the login asking. It is
taken once (GETDEL): a replayed callback finds nothing. It lives FLOW_SECONDS.
"""

import hashlib
import json
import re
import secrets
from dataclasses import asdict, dataclass

from app.auth.mfa.challenges import STEP_SECONDS, Challenges

FLOW_SECONDS = STEP_SECONDS  # the challenges' store keeps what it binds this long
PURPOSE = "oidc"
MAX_NEXT = 2048
# A path on this site: one "/" then not another, no backslash (browsers read it as "/"),
# printable ASCII only: no control character (browsers drop tabs and newlines, making
# "/\t/x" into "//x").
_LOCAL_PATH = re.compile(r"/(?![/\\])[!-\[\]-~]*")


def safe_next(value: str | None) -> str:
    """`value` when it is a path on this site, else "/" (API.md section 11)."""
    if value and len(value) <= MAX_NEXT and _LOCAL_PATH.fullmatch(value):
        return value
    return "/"


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    provider: str
    oauth_state: str  # the `state` parameter sent to the provider
    nonce: str
    code_verifier: str
    redirect_uri: str
    next: str
    device: str | None = None
    link_user: int | None = None  # a link: the user asking, and their login
    link_login: str | None = None


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "surrogateescape")).hexdigest()


async def begin(challenges: Challenges, pending: PendingSignIn) -> str:
    """Keep `pending`; the cookie that names it."""
    cookie = secrets.token_urlsafe(32)
    await challenges.bind(PURPOSE, _key(cookie), json.dumps(asdict(pending)))
    return cookie


async def take(challenges: Challenges, cookie: str | None) -> PendingSignIn | None:
    """The pending sign-in of `cookie`, ended: a second call gets None."""
    if not cookie or len(cookie) > 128:
        return None
    raw = await challenges.take(PURPOSE, _key(cookie))
    if raw is None:
        return None
    return PendingSignIn(**json.loads(raw))
