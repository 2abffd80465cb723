"""TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps) with pyotp, and the QR code of its URI.

A code is checked against the previous, current and next step (one step of clock drift
either way); which step matched is returned, so that the caller can accept each step
once (repository.use_totp_step).
"""

import hmac
import io
import time

import pyotp
import segno

DIGITS = 6
STEP_SECONDS = 30
DRIFT_STEPS = 1
MAX_CODE_LENGTH = 64  # a code field longer than this is refused by validation


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits, RFC 4226's recommended length


def provisioning_uri(secret: str, *, username: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as an SVG QR code (segno: no network, no image library), for the SPA."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", xmldecl=False, scale=4, border=2)
    return out.getvalue().decode()


def matching_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The time step within the drift window whose code is `code`, else None."""
    code = "".join(code.split())
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        # Every candidate is compared (no early exit), in constant time.
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found
