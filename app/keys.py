"""Keys derived from SECRET_KEY, one per purpose, and the keyed hash made with them.

Each use of the secret gets a key of its own (an HMAC of the purpose's name under the
secret), so that a MAC made for one purpose is never valid for another, and a key that
leaks through one use says nothing about the others.
"""

import hashlib
import hmac


def derived_key(secret: str, purpose: str) -> bytes:
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()


def keyed_digest(key: bytes, data: str) -> bytes:
    """HMAC-SHA256 of `data`: compare two with hmac.compare_digest, never ==."""
    return hmac.new(key, data.encode(), hashlib.sha256).digest()
