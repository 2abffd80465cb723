"""The second step of a login, passkey login and re-authentication (API.md section 9).
The flows are in steps.py; here, the request's cookies and the response's."""

from collections.abc import Awaitable
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from app.auth.backend import StrategyDep
from app.auth.cookies import CookiesDep
from app.auth.deps import CurrentPrincipal, get_auth
from app.auth.mfa import steps
from app.auth.mfa.challenges import STEP_SECONDS
from app.auth.mfa.factors import MFA_KEYS
from app.auth.mfa.passkeys import relying_party
from app.auth.mfa.schemas import FactorProof, PasskeyLogin, PublicKeyOptions, Reauthentication, ReauthRead
from app.auth.router import logged_in
from app.auth.schemas import LoginRead
from app.auth.service import NewSession
from app.auth.sessions.types import timestamp
from app.cookie_header import cookies_of
from app.errors import AppError, ErrorCode, error_response, responses
from app.models import User
from app.state import SETTINGS, state_of

router = APIRouter(prefix="/auth", tags=["auth"])

STEP_ERRORS = (ErrorCode.MFA_CHALLENGE_EXPIRED, ErrorCode.CSRF_FAILED, ErrorCode.VALIDATION_ERROR)


async def get_mfa(request: Request) -> steps.Mfa:
    state = state_of(request)
    auth = await get_auth(request)
    return steps.Mfa(auth, state[MFA_KEYS], relying_party(request, state[SETTINGS]))


MfaDep = Annotated[steps.Mfa, Depends(get_mfa)]


def _step_cookie(request: Request, cookies: CookiesDep) -> str | None:
    return cookies_of(request.scope).get(cookies.mfa)


def _presented(request: Request, cookies: CookiesDep) -> tuple[str | None, str | None]:
    sent = cookies_of(request.scope)
    return sent.get(cookies.session), sent.get(cookies.refresh)


async def _finish(flow: Awaitable[tuple[User, NewSession]], cookies: CookiesDep) -> Response:
    """A flow that ends the pending step: a login's success, or the error that ended the
    step; either way the challenge cookie is cleared."""
    try:
        user, new = await flow
    except AppError as exc:
        if exc.code is not ErrorCode.MFA_CHALLENGE_EXPIRED:
            raise
        response = error_response(exc.code, exc.message, details=exc.details, headers=exc.headers)
    else:
        response = logged_in(user, new, cookies)
    cookies.clear_mfa(response)
    return response


@router.post(
    "/mfa/webauthn/options",
    response_model=PublicKeyOptions,
    summary="Passkey options for the pending second step",
    responses=responses(*STEP_ERRORS),
)
async def second_step_options(request: Request, mfa: MfaDep, cookies: CookiesDep) -> PublicKeyOptions:
    """Request options naming the user's passkeys, for `navigator.credentials.get()`."""
    return PublicKeyOptions(publicKey=await steps.step_options(mfa, _step_cookie(request, cookies)))


@router.post(
    "/mfa/verify",
    response_model=LoginRead,
    summary="Finish a login with its second factor",
    responses=responses(
        *STEP_ERRORS,
        ErrorCode.INVALID_MFA_CODE,
        ErrorCode.INVALID_PASSKEY,
        ErrorCode.USER_INACTIVE,
        ErrorCode.RATE_LIMITED,
    ),
)
async def verify_second_step(
    request: Request, body: FactorProof, mfa: MfaDep, strategy: StrategyDep, cookies: CookiesDep
) -> Response:
    """TOTP, a recovery code or a passkey assertion. Success is a login's success (the
    session is `aal` 2) and clears the challenge cookie; the fifth wrong code ends the
    step (then 401 `mfa_challenge_expired`: log in again). Each attempt counts toward the
    login rate limits."""
    cookie, presented = _step_cookie(request, cookies), _presented(request, cookies)
    return await _finish(steps.verify_step(mfa, strategy, cookie, body, presented=presented), cookies)


@router.post(
    "/passkey/options",
    response_model=PublicKeyOptions,
    summary="Options for logging in with a passkey (no password)",
    responses=responses(ErrorCode.CSRF_FAILED, ErrorCode.RATE_LIMITED),
)
async def passkey_options(mfa: MfaDep, cookies: CookiesDep) -> Response:
    """For a discoverable credential (no `allowCredentials`, user verification required);
    sets the challenge cookie that `POST /auth/passkey/login` needs."""
    options, cookie = await steps.passkey_options(mfa)
    response = JSONResponse(PublicKeyOptions(publicKey=options).model_dump(mode="json"))
    cookies.set_mfa(response, cookie, STEP_SECONDS)
    return response


@router.post(
    "/passkey/login",
    response_model=LoginRead,
    summary="Log in with a passkey",
    responses=responses(
        *STEP_ERRORS,
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.USER_INACTIVE,
        ErrorCode.INVALID_PASSKEY,
        ErrorCode.RATE_LIMITED,
    ),
)
async def passkey_login(
    request: Request, body: PasskeyLogin, mfa: MfaDep, strategy: StrategyDep, cookies: CookiesDep
) -> Response:
    """A login's success with `aal` 2 and `amr` `["webauthn"]`. An unknown credential, one
    without user verification or whose signature counter went backwards: 401
    `invalid_credentials`. The challenge is single use, whatever the outcome."""
    cookie, presented = _step_cookie(request, cookies), _presented(request, cookies)
    flow = steps.passkey_login(mfa, strategy, cookie, body.credential, presented=presented)
    return await _finish(flow, cookies)


@router.post(
    "/reauthenticate/webauthn/options",
    response_model=PublicKeyOptions,
    summary="Passkey options for re-authenticating",
    responses=responses(ErrorCode.NOT_AUTHENTICATED, ErrorCode.CONFLICT, ErrorCode.CSRF_FAILED),
)
async def reauthenticate_options(mfa: MfaDep, principal: CurrentPrincipal) -> PublicKeyOptions:
    """Request options naming your passkeys (409 without one); the challenge is bound to this session."""
    return PublicKeyOptions(publicKey=await steps.reauth_options(mfa, principal))


@router.post(
    "/reauthenticate",
    response_model=ReauthRead,
    summary="Confirm it is you: make this session fresh",
    responses=responses(
        ErrorCode.NOT_AUTHENTICATED,
        ErrorCode.SECOND_FACTOR_REQUIRED,
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.INVALID_MFA_CODE,
        ErrorCode.INVALID_PASSKEY,
        ErrorCode.CSRF_FAILED,
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.RATE_LIMITED,
    ),
)
async def reauthenticate(mfa: MfaDep, principal: CurrentPrincipal, body: Reauthentication) -> ReauthRead:
    """`{"password"}` for a user without a second factor; otherwise a second factor as
    for `/auth/mfa/verify` (a password alone is 400 `second_factor_required`). The session
    is then fresh for REAUTH_MAX_AGE_SECONDS (`expires_in`)."""
    auth_time = await steps.reauthenticate(mfa, principal, body)
    max_age = mfa.auth.settings.reauth_max_age_seconds
    return ReauthRead(auth_time=timestamp(auth_time), expires_in=max_age)
