"""Your own second factors (API.md section 9): `/users/me/mfa` and `/users/me/passkeys`.
Reading them needs a session; changing them a fresh one (403 `reauthentication_required`)."""

from fastapi import APIRouter, Path, Response, status

from app.auth.deps import CurrentPrincipal, FreshPrincipal
from app.auth.mfa import enrolment
from app.auth.mfa.router import MfaDep
from app.auth.mfa.schemas import (
    MfaStatus,
    PasskeyCreate,
    PasskeyCreated,
    PublicKeyOptions,
    RecoveryCodesRead,
    TotpConfirm,
    TotpEnrolment,
)
from app.db import MAX_ID
from app.errors import ErrorCode, responses

router = APIRouter(prefix="/users/me", tags=["second factors"])

READ = (ErrorCode.NOT_AUTHENTICATED,)
CHANGE = (ErrorCode.NOT_AUTHENTICATED, ErrorCode.REAUTHENTICATION_REQUIRED, ErrorCode.CSRF_FAILED)


@router.get("/mfa", response_model=MfaStatus, summary="Your second factors", responses=responses(*READ))
async def mfa_status(mfa: MfaDep, principal: CurrentPrincipal) -> MfaStatus:
    return await enrolment.status(mfa, principal)


@router.post(
    "/mfa/totp",
    response_model=TotpEnrolment,
    summary="Start enrolling an authenticator app (TOTP)",
    responses=responses(*CHANGE, ErrorCode.CONFLICT),
)
async def enrol_totp(mfa: MfaDep, principal: FreshPrincipal) -> TotpEnrolment:
    """The secret (base32, to type) and the `otpauth://` URI (and its QR code, SVG).
    Nothing is on until `POST /users/me/mfa/totp/confirm`; a new call replaces an
    unconfirmed secret. The secret is never shown again."""
    return await enrolment.enrol_totp(mfa, principal)


@router.post(
    "/mfa/totp/confirm",
    response_model=RecoveryCodesRead,
    summary="Turn TOTP on with a first code",
    responses=responses(*CHANGE, ErrorCode.INVALID_MFA_CODE, ErrorCode.CONFLICT, ErrorCode.VALIDATION_ERROR),
)
async def confirm_totp(mfa: MfaDep, principal: FreshPrincipal, body: TotpConfirm) -> RecoveryCodesRead:
    """Ten recovery codes, shown this once (`[]` when you had codes already). Every other
    session of yours is logged out, and this one counts as two-factor (`aal` 2)."""
    return RecoveryCodesRead(recovery_codes=await enrolment.confirm_totp(mfa, principal, body.code))


@router.delete(
    "/mfa/totp",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Turn TOTP off",
    responses=responses(*CHANGE, ErrorCode.NOT_FOUND),
)
async def disable_totp(mfa: MfaDep, principal: FreshPrincipal) -> Response:
    """The recovery codes go too when no passkey is left."""
    await enrolment.disable_totp(mfa, principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/mfa/recovery-codes",
    response_model=RecoveryCodesRead,
    summary="New recovery codes (the old ones stop working)",
    responses=responses(*CHANGE, ErrorCode.CONFLICT),
)
async def regenerate_recovery_codes(mfa: MfaDep, principal: FreshPrincipal) -> RecoveryCodesRead:
    """Needs a second factor (409 without one). Shown this once."""
    return RecoveryCodesRead(recovery_codes=await enrolment.regenerate_codes(mfa, principal))


@router.post(
    "/passkeys/options",
    response_model=PublicKeyOptions,
    summary="Options for registering a passkey",
    responses=responses(*CHANGE),
)
async def passkey_options(mfa: MfaDep, principal: FreshPrincipal) -> PublicKeyOptions:
    """PublicKeyCredentialCreationOptions for `navigator.credentials.create()`: a
    discoverable credential, your passkeys excluded; the challenge is bound to this session."""
    return PublicKeyOptions(publicKey=await enrolment.passkey_options(mfa, principal))


@router.post(
    "/passkeys",
    response_model=PasskeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Register a passkey",
    responses=responses(*CHANGE, ErrorCode.INVALID_PASSKEY, ErrorCode.CONFLICT, ErrorCode.VALIDATION_ERROR),
)
async def add_passkey(mfa: MfaDep, principal: FreshPrincipal, body: PasskeyCreate) -> PasskeyCreated:
    """Your first second factor also brings recovery codes (`recovery_codes`, shown this
    once), logs out your other sessions and makes this one `aal` 2."""
    return await enrolment.add_passkey(mfa, principal, body.name, body.credential)


@router.delete(
    "/passkeys/{passkey_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a passkey",
    responses=responses(*CHANGE, ErrorCode.NOT_FOUND, ErrorCode.VALIDATION_ERROR),
)
async def remove_passkey(
    mfa: MfaDep, principal: FreshPrincipal, passkey_id: int = Path(ge=1, le=MAX_ID)
) -> Response:
    await enrolment.remove_passkey(mfa, principal, passkey_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
