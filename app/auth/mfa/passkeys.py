"""WebAuthn (passkeys) with py_webauthn: the options we send and the checks on what comes back.

The relying party id is WEBAUTHN_RP_ID, else the host of PUBLIC_URL, else the request's
host; the expected origin is the request's own origin or one of CORS_ORIGINS (API.md
section 9). py_webauthn verifies the challenge, origin, RP id hash, user presence and the
signature; the policy on top is ours, checked only once the signature holds: user
verification where a passkey stands in for the password, the signature counter (a
counter that does not move forward, when either side is non-zero, is a cloned
authenticator: W3C WebAuthn 6.1.1), and that the credential belongs to the user expected.
"""

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import parse_authentication_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from app.auth.csrf import own_origin
from app.config import Settings
from app.errors import AppError, ErrorCode
from app.keys import derived_key
from app.models import Passkey

TIMEOUT_MS = 120_000
MAX_CREDENTIAL_BYTES = 16_384  # a real credential is a few hundred bytes; more is refused (422)


@dataclass(frozen=True, slots=True)
class RelyingParty:
    id: str
    name: str
    origins: list[str]


@dataclass(frozen=True, slots=True)
class NewCredential:
    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: str


class Check(Enum):
    OK = "ok"
    INVALID = "invalid"  # does not verify: wrong challenge, origin, RP id, signature, garbage
    NOT_VERIFIED = "not_verified"  # no user verification where it is required
    COUNTER = "counter"  # the signature counter did not move forward


def relying_party(request: HTTPConnection, settings: Settings) -> RelyingParty:
    host = settings.webauthn_rp_id or (
        urlsplit(settings.public_url).hostname if settings.public_url else None
    )
    if not host:
        host = (request.url.hostname or "localhost").lower()
    origin = own_origin(request.scope, request.headers)
    return RelyingParty(host, settings.webauthn_rp_name, [origin, *settings.cors_origins])


def user_handle(secret_key: str, user_id: int) -> bytes:
    """Opaque and stable per user (never the id or the email: W3C WebAuthn 14.6.1)."""
    return hmac.new(
        derived_key(secret_key, "webauthn-user-handle"), str(user_id).encode(), hashlib.sha256
    ).digest()


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _descriptors(passkeys: list[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    out = []
    for passkey in passkeys:
        transports = []
        for name in passkey.transports.split():
            try:
                transports.append(AuthenticatorTransport(name))
            except ValueError:
                continue
        out.append(PublicKeyCredentialDescriptor(id=passkey.credential_id, transports=transports or None))
    return out


def creation_options(
    rp: RelyingParty, *, handle: bytes, username: str, existing: list[Passkey]
) -> tuple[dict[str, Any], str]:
    """PublicKeyCredentialCreationOptions (JSON form) for a new discoverable passkey, and its challenge."""
    challenge = secrets.token_bytes(32)
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_id=handle,
        user_name=username,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(existing),
    )
    return json.loads(options_to_json(options)), b64url(challenge)


def request_options(rp: RelyingParty, allowed: list[Passkey] | None) -> tuple[dict[str, Any], str]:
    """PublicKeyCredentialRequestOptions: naming `allowed`, or for a discoverable
    credential (None: no allowCredentials, user verification required)."""
    challenge = secrets.token_bytes(32)
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        allow_credentials=_descriptors(allowed) if allowed is not None else None,
        user_verification=(
            UserVerificationRequirement.REQUIRED if allowed is None else UserVerificationRequirement.PREFERRED
        ),
    )
    return json.loads(options_to_json(options)), b64url(challenge)


def verify_new(rp: RelyingParty, credential: dict[str, Any], challenge: str | None) -> NewCredential:
    """A registration response, verified; 400 `invalid_passkey` otherwise."""
    if challenge is None:
        raise AppError(
            ErrorCode.INVALID_PASSKEY, "No passkey registration is pending: ask for options again."
        )
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=_unb64url(challenge),
            expected_rp_id=rp.id,
            expected_origin=rp.origins,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise AppError(ErrorCode.INVALID_PASSKEY) from exc
    response = credential.get("response")
    transports = response.get("transports") if isinstance(response, dict) else None
    names = [str(t) for t in transports if isinstance(t, str)][:8] if isinstance(transports, list) else []
    return NewCredential(
        verified.credential_id, verified.credential_public_key, verified.sign_count, " ".join(names)[:255]
    )


def asserted_ids(credential: dict[str, Any]) -> tuple[bytes, bytes | None] | None:
    """(credential id, user handle) an assertion names, or None for one that does not parse."""
    try:
        parsed = parse_authentication_credential_json(credential)
    except (WebAuthnException, ValueError, TypeError, KeyError):
        return None
    return parsed.raw_id, parsed.response.user_handle


def check_assertion(
    rp: RelyingParty,
    credential: dict[str, Any],
    challenge: str | None,
    passkey: Passkey,
    *,
    require_verified_user: bool,
) -> tuple[Check, int]:
    """How an assertion by `passkey` fares, and its new signature counter."""
    if challenge is None:
        return Check.INVALID, 0
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=_unb64url(challenge),
            expected_rp_id=rp.id,
            expected_origin=rp.origins,
            credential_public_key=passkey.public_key,
            # Ours to check, below, once the signature holds.
            credential_current_sign_count=0,
            require_user_verification=False,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError):
        return Check.INVALID, 0
    new_count = verified.new_sign_count
    if (new_count > 0 or passkey.sign_count > 0) and new_count <= passkey.sign_count:
        return Check.COUNTER, new_count
    if require_verified_user and not verified.user_verified:
        return Check.NOT_VERIFIED, new_count
    return Check.OK, new_count
