"""Personal access tokens (API.md section 11): `Authorization: Bearer cspat_...` for scripts.

A token is `cspat_` + 43 base62 characters (256 random bits) + a 6-character base62
CRC32 of them, as GitHub's tokens are built: the prefix lets secret scanners find a
leaked one (regex `cspat_[0-9A-Za-z]{49}`), and the checksum lets us (and them) refuse
a mistyped or made-up value without a lookup. Only its SHA-256 is stored
(app/models/token.py) and cached (app/auth/sessions: `pat:<digest>`).

Modules: service.py (checking a bearer token: one store round trip on a hit, no query;
creating, listing and revoking), repository.py (every SQL on access_token), router.py
(/users/me/tokens), schemas.py.
"""

import hashlib
import re
import secrets
import zlib
from enum import StrEnum

PREFIX = "cspat_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY = 43  # 62**43 > 2**256
_CHECK = 6  # 62**6 > 2**32
TOKEN_LENGTH = len(PREFIX) + _BODY + _CHECK
_SHAPE = re.compile(rf"{PREFIX}([0-9A-Za-z]{{{_BODY}}})([0-9A-Za-z]{{{_CHECK}}})")


class Scope(StrEnum):
    """What a token may do; a route names the one it needs (app/auth/deps.py), and a
    route that names none refuses every token (403 `insufficient_scope`)."""

    PROFILE_READ = "profile:read"  # GET /users/me
    ITEMS_READ = "items:read"  # GET /items, GET /items/{id}
    ITEMS_WRITE = "items:write"  # POST, PUT, DELETE /items


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK)


def mint() -> str:
    body = _base62(secrets.randbits(256), _BODY)
    return f"{PREFIX}{body}{_checksum(body)}"


def well_formed(token: str) -> bool:
    """Ours by its shape and checksum (no lookup): a guess or a typo fails here."""
    match = _SHAPE.fullmatch(token)
    return match is not None and secrets.compare_digest(_checksum(match[1]), match[2])


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
