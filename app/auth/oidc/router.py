"""The routes of sign-in with OpenID Connect (API.md section 11). The flows are in
service.py; here, the request's cookies and the redirects. Every answer of the callback
is a 302: to `next` (signed in or linked), to `/?mfa_required=1` (a second step owed), or
to `/?error=<code>`; the pending sign-in's cookie is cleared whatever happened."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from app.auth.backend import StrategyDep
from app.auth.cookies import CookiesDep
from app.auth.deps import CurrentPrincipal, FreshPrincipal, authenticate, get_auth, require_fresh
from app.auth.mfa.challenges import STEP_SECONDS
from app.auth.oidc import service
from app.auth.oidc.flow import FLOW_SECONDS
from app.auth.oidc.providers import OIDC, Failure, SignInFailed
from app.auth.oidc.schemas import IdentityRead, ProviderRead
from app.auth.principal import Principal
from app.auth.router import set_login_cookies
from app.cookie_header import cookies_of
from app.db import MAX_ID, SessionDep
from app.errors import AppError, ErrorCode, responses
from app.state import SETTINGS, state_of

router = APIRouter(prefix="/auth/oidc", tags=["auth"])
account_router = APIRouter(prefix="/users/me", tags=["identities"])

ProviderName = Annotated[str, Path(min_length=1, max_length=64, description="As in OIDC_PROVIDERS.")]
MAX_PARAMETER = 4096


async def get_oidc(request: Request) -> service.Oidc:
    return service.Oidc(await get_auth(request), state_of(request)[OIDC])


OidcDep = Annotated[service.Oidc, Depends(get_oidc)]


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=status.HTTP_302_FOUND)


def _failed(failure: Failure) -> RedirectResponse:
    return _redirect(f"/?error={failure.value}")


def _redirect_uri(request: Request, name: str) -> str:
    """The callback URL registered at the provider: under PUBLIC_URL when it is set (never
    built from a Host header a caller chose), else this request's own origin."""
    path = request.url_for("oidc_callback", name=name).path
    public_url = state_of(request)[SETTINGS].public_url
    origin = public_url.rstrip("/") if public_url else f"{request.url.scheme}://{request.url.netloc}"
    return origin + path


async def _linking(request: Request) -> Principal:
    """The caller's fresh session; anyone else is told to (re-)authenticate (API.md section
    11: `link=true` without a fresh session is 403 `reauthentication_required`)."""
    principal = await authenticate(request)
    if principal is None:
        raise AppError(
            ErrorCode.REAUTHENTICATION_REQUIRED, "Log in first, then link.", details={"methods": []}
        )
    return require_fresh(request, principal)


@router.get("/providers", response_model=list[ProviderRead], summary="The sign-in providers configured")
async def list_providers(request: Request) -> list[ProviderRead]:
    """One entry per OIDC_PROVIDERS provider: a "Sign in with <name>" button each."""
    return [ProviderRead(name=name) for name in state_of(request)[OIDC].names()]


REDIRECT: dict[int | str, dict[str, Any]] = {
    status.HTTP_302_FOUND: {"description": "To the provider, or to `/?error=<code>`."}
}


@router.get(
    "/{name}/authorize",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    summary="Start signing in (or linking) with a provider",
    responses={
        **REDIRECT,
        **responses(
            ErrorCode.NOT_FOUND,
            ErrorCode.REAUTHENTICATION_REQUIRED,
            ErrorCode.VALIDATION_ERROR,
        ),
    },
)
async def authorize(
    request: Request,
    name: ProviderName,
    oidc: OidcDep,
    cookies: CookiesDep,
    next: Annotated[str | None, Query(description="A path on this site to land on (else `/`).")] = None,
    link: Annotated[bool, Query(description="Link the identity to your account (fresh session).")] = False,
) -> Response:
    """A 302 to the provider's authorization endpoint: the code flow with PKCE (S256), a
    `state` and a `nonce`, bound to a short-lived HttpOnly cookie (Path=/api/v1/auth/oidc,
    SameSite=Lax, 300 s). `next` must be a path on this site; anything else is ignored.
    With `link=true`, a fresh session is needed (403 `reauthentication_required`): the
    identity is then linked to your account instead of signing in. A provider that does
    not answer: 302 to `/?error=provider_unavailable`. Register
    `<PUBLIC_URL>/api/v1/auth/oidc/<name>/callback` at the provider."""
    principal = await _linking(request) if link else None
    try:
        url, cookie = await service.authorize(
            oidc,
            name,
            redirect_uri=_redirect_uri(request, name),
            next_path=next[:MAX_PARAMETER] if next else None,
            link=principal,
        )
    except SignInFailed as failed:
        return _failed(failed.failure)
    response = _redirect(url)
    cookies.set_oidc(response, cookie, FLOW_SECONDS)
    return response


@router.get(
    "/{name}/callback",
    name="oidc_callback",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    summary="Where the provider sends the browser back",
    responses={
        status.HTTP_302_FOUND: {
            "description": "To `next` with the session cookies (or the identity linked), to "
            "`/?mfa_required=1` with the second step's cookie, or to `/?error=<code>`."
        },
        **responses(ErrorCode.NOT_FOUND, ErrorCode.VALIDATION_ERROR),
    },
)
async def callback(
    request: Request,
    name: ProviderName,
    oidc: OidcDep,
    strategy: StrategyDep,
    cookies: CookiesDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    """Checks the `state` (single use), exchanges the code, checks the ID token (signature
    by the provider's JWKS, `iss`, `aud`, `exp`, `nonce`). A linked identity logs its user
    in (amr `["oidc"]`); a new identity with a verified email that no user has makes a
    user (no usable password) and logs it in; an email some user has already: 302 to
    `/?error=account_exists`, nothing linked. Errors: `invalid_state`, `exchange_failed`,
    `invalid_id_token`, `provider_unavailable`, `account_exists`, `email_not_verified`,
    `user_inactive`, `identity_in_use` (a link to an identity another user has),
    `access_denied` (the provider said no), `rate_limited`; nothing is created."""
    sent = cookies_of(request.scope)
    try:
        if error is not None:
            raise SignInFailed(Failure.ACCESS_DENIED)
        outcome = await service.callback(
            oidc,
            strategy,
            name,
            cookie=sent.get(cookies.oidc),
            code=code if code and len(code) <= MAX_PARAMETER else None,
            state=state if state and len(state) <= MAX_PARAMETER else None,
            presented=(sent.get(cookies.session), sent.get(cookies.refresh)),
        )
    except SignInFailed as failed:
        response = _failed(failed.failure)
    else:
        if isinstance(outcome, service.SecondStepOwed):
            response = _redirect("/?mfa_required=1")
            cookies.set_mfa(response, outcome.cookie, STEP_SECONDS)
        elif isinstance(outcome, service.SignedIn):
            response = _redirect(outcome.next)
            set_login_cookies(response, outcome.new, cookies)
            if outcome.new.device is not None:
                cookies.set_device(response, outcome.new.device)
        else:
            response = _redirect(outcome.next)
    cookies.clear_oidc(response)
    return response


@account_router.get(
    "/identities",
    response_model=list[IdentityRead],
    summary="Your identities at sign-in providers",
    responses=responses(ErrorCode.NOT_AUTHENTICATED),
)
async def list_identities(session: SessionDep, principal: CurrentPrincipal) -> list[IdentityRead]:
    rows = await service.identities_of(session, principal.user.id)
    return [IdentityRead.model_validate(row) for row in rows]


@account_router.delete(
    "/identities/{identity_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Unlink an identity",
    responses=responses(
        ErrorCode.NOT_AUTHENTICATED,
        ErrorCode.REAUTHENTICATION_REQUIRED,
        ErrorCode.CSRF_FAILED,
        ErrorCode.NOT_FOUND,
        ErrorCode.CONFLICT,
        ErrorCode.VALIDATION_ERROR,
    ),
)
async def unlink_identity(
    session: SessionDep, oidc: OidcDep, principal: FreshPrincipal, identity_id: int = Path(ge=1, le=MAX_ID)
) -> Response:
    """Needs a fresh session. 409 when it is your only way to log in (no usable password,
    no passkey, no other identity): set a password with "forgot password", or add a
    passkey, first."""
    await service.unlink(oidc, session, principal, identity_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
