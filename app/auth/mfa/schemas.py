"""Bodies of the second-factor, passkey and re-authentication routes (API.md section 9)."""

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.auth.mfa.passkeys import MAX_CREDENTIAL_BYTES
from app.auth.mfa.totp import MAX_CODE_LENGTH
from app.schemas import NO_NUL

Method = Literal["totp", "webauthn", "recovery_code"]


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, separators=(",", ":"))) > MAX_CREDENTIAL_BYTES:
        raise ValueError(f"a credential is at most {MAX_CREDENTIAL_BYTES} bytes of JSON")
    return value


Credential = Annotated[
    dict[str, Any],
    AfterValidator(_bounded),
    Field(description="The PublicKeyCredential as its toJSON() gives it (WebAuthn Level 3, base64url)."),
]
Code = Annotated[str, Field(min_length=1, max_length=MAX_CODE_LENGTH, pattern=NO_NUL)]


class FactorProof(BaseModel):
    """A second factor: `{"method": "totp" | "recovery_code", "code"}` or
    `{"method": "webauthn", "credential"}`."""

    model_config = ConfigDict(extra="forbid")

    method: Method
    code: Code | None = None
    credential: Credential | None = None

    @model_validator(mode="after")
    def _one_proof(self) -> "FactorProof":
        if self.method == "webauthn":
            if self.credential is None or self.code is not None:
                raise ValueError("method webauthn takes a credential (and no code)")
        elif self.code is None or self.credential is not None:
            raise ValueError(f"method {self.method} takes a code (and no credential)")
        return self


class Reauthentication(BaseModel):
    """`{"password"}` for a user without a second factor, else a second factor as for
    `/auth/mfa/verify`."""

    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(default=None, min_length=1, max_length=4096)
    method: Method | None = None
    code: Code | None = None
    credential: Credential | None = None

    @model_validator(mode="after")
    def _password_or_factor(self) -> "Reauthentication":
        if (self.password is None) == (self.method is None):
            raise ValueError("send either a password or a second factor (method)")
        if self.method is not None:
            FactorProof(method=self.method, code=self.code, credential=self.credential)
        elif self.code is not None or self.credential is not None:
            raise ValueError("a password comes alone")
        return self

    def proof(self) -> FactorProof | None:
        if self.method is None:
            return None
        return FactorProof(method=self.method, code=self.code, credential=self.credential)


class PasskeyLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential: Credential


class PasskeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    credential: Credential


class TotpConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Code


class MfaRequired(BaseModel):
    """A login whose password was right, for a user with a second factor: only the
    challenge cookie is set; `/auth/mfa/verify` finishes it."""

    mfa_required: Literal[True] = True
    methods: list[Method]
    expires_in: int = Field(description="Seconds left to present the second factor.")


class PublicKeyOptions(BaseModel):
    publicKey: dict[str, Any] = Field(  # noqa: N815  (the WebAuthn name)
        description="PublicKeyCredentialCreationOptions or ...RequestOptions in their JSON form (base64url)."
    )


class ReauthRead(BaseModel):
    auth_time: datetime
    expires_in: int = Field(description="Seconds the session stays fresh.")


class PasskeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None


class PasskeyCreated(PasskeyRead):
    recovery_codes: list[str] | None = Field(
        default=None, description="Shown this once, when this passkey is the user's first second factor."
    )


class MfaStatus(BaseModel):
    totp: bool
    passkeys: list[PasskeyRead]
    recovery_codes_left: int


class TotpEnrolment(BaseModel):
    secret: str = Field(description="Base32; shown this once, for typing into an authenticator app.")
    otpauth_uri: str
    qr_svg: str = Field(description="The otpauth URI as an SVG QR code.")


class RecoveryCodesRead(BaseModel):
    recovery_codes: list[str] = Field(description="Shown this once.")
