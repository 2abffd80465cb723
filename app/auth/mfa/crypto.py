"""Second-factor secrets at rest: the TOTP secret encrypted, recovery codes hashed.

The TOTP secret must be readable by the server (it computes the codes), so it is
encrypted, not hashed: AES-256-GCM with a key derived from SECRET_KEY by HKDF-SHA256
(purpose "totp-secret"), a fresh 96-bit nonce per encryption, and the user's id as
associated data, so a ciphertext copied to another user's row does not decrypt. The
stored value names its key (`<key id>:<base64url(nonce + ciphertext)>`, the key id a
hash of the key): a rotation adds the new key for writing and keeps old ones for
reading, and can re-encrypt rows lazily (not built: there is one key today).

Recovery codes have at least 50 bits of entropy (10 base32 characters, 50 bits), so a
fast keyed hash (HMAC-SHA256 under a key of their own) is right: a slow password hash
would only make each login's check slower, and the key keeps a stolen table from being
checked offline at all.
"""

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.keys import derived_key

NONCE_BYTES = 12
RECOVERY_CODE_COUNT = 10
# Crockford's base32 alphabet without the letters people confuse (I, L, O, U): 5 bits a character.
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RECOVERY_CODE_LENGTH = 10  # 50 bits


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"app:totp-secret:v1")
        key = hkdf.derive(secret_key.encode())
        self.key_id = hashlib.sha256(b"key-id:" + key).hexdigest()[:8]
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, *, user_id: int) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), _aad(user_id))
        return f"{self.key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, stored: str, *, user_id: int) -> str | None:
        """The plaintext, or None for a value this key did not seal for this user."""
        key_id, _, blob = stored.partition(":")
        if key_id != self.key_id:
            return None
        try:
            raw = base64.urlsafe_b64decode(blob)
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(user_id)).decode()
        except Exception:  # noqa: BLE001  (InvalidTag, bad base64: not ours either way)
            return None


def _aad(user_id: int) -> bytes:
    return f"totp-secret:user:{user_id}".encode()


class RecoveryCodes:
    def __init__(self, secret_key: str) -> None:
        self.key = derived_key(secret_key, "recovery-code")

    @staticmethod
    def generate() -> list[str]:
        """Ten new codes, shown as XXXXX-XXXXX."""
        codes = []
        for _ in range(RECOVERY_CODE_COUNT):
            raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
            codes.append(f"{raw[:5]}-{raw[5:]}")
        return codes

    @staticmethod
    def normalise(code: str) -> str:
        """Compared without case, spaces or hyphens (API.md section 9)."""
        return "".join(code.split()).replace("-", "").upper()

    def digest(self, code: str) -> str:
        return hmac.new(self.key, self.normalise(code).encode(), hashlib.sha256).hexdigest()
