"""The session routes (API.md section 3): CSRF token, login, refresh, logout, logout
everywhere. The flows are in service.py; here, the request's parts and the response's
cookies. fastapi-users' register, reset and verify routers are in library.py."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.auth import service
from app.auth.backend import StrategyDep
from app.auth.cookies import CookiePolicy, CookiesDep
from app.auth.csrf import CsrfDep
from app.auth.deps import AuthDep, CurrentPrincipal
from app.auth.mfa.schemas import MfaRequired
from app.auth.ratelimit import per_ip
from app.auth.schemas import CsrfRead, Detail, LoginRead, LoginRequest, RefreshRead, ReportLogin, UserRead
from app.cookie_header import cookies_of
from app.errors import ErrorCode, error_response, responses

router = APIRouter(prefix="/auth", tags=["auth"])


def _session_cookie(carrier: Response, response: Response) -> None:
    """The session cookie as fastapi-users' transport wrote it on its own (204) response."""
    for header in carrier.headers.getlist("set-cookie"):
        response.headers.append("set-cookie", header)


def set_login_cookies(response: Response, new: service.NewSession, cookies: CookiePolicy) -> None:
    """The session, refresh and CSRF cookies of a new session on `response`."""
    _session_cookie(new.carrier, response)
    cookies.set_refresh(response, new.tokens.refresh, new.tokens.refresh_ttl)
    # Bound to this session, so it expires with it (a fresh one comes with each refresh).
    cookies.set_csrf(response, new.csrf_token, new.tokens.session_ttl)


def _hand_over(body: BaseModel, new: service.NewSession, cookies: CookiePolicy) -> JSONResponse:
    """The response of a new session: `body`, the session cookie, the refresh cookie and
    the CSRF cookie."""
    response = JSONResponse(body.model_dump(mode="json"))
    set_login_cookies(response, new, cookies)
    return response


def logged_in(user: object, new: service.NewSession, cookies: CookiePolicy) -> JSONResponse:
    """A login's success (API.md section 3), whichever way it was made."""
    body = LoginRead(
        user=UserRead.model_validate(user), csrf_token=new.csrf_token, expires_in=new.tokens.session_ttl
    )
    response = _hand_over(body, new, cookies)
    if new.device is not None:
        cookies.set_device(response, new.device)
    return response


@router.get("/csrf", response_model=CsrfRead, summary="Get a CSRF token (and its cookie)")
async def get_csrf_token(request: Request, cookies: CookiesDep, csrf: CsrfDep) -> JSONResponse:
    """Send the returned value as `X-CSRF-Token` on every POST, PUT, PATCH and DELETE.
    The token is bound to the session cookie the browser holds now (none before login);
    while the CSRF cookie holds a token still good for that session, it is that one."""
    sent = cookies_of(request.scope)
    session, held = sent.get(cookies.session), sent.get(cookies.csrf)
    token = held if held and csrf.reusable(held, session) else csrf.issue(session)
    response = JSONResponse({"csrf_token": token})
    cookies.set_csrf(response, token, csrf.max_age)
    return response


@router.post(
    "/login",
    response_model=LoginRead | MfaRequired,
    summary="Log in with username or email",
    responses=responses(
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.USER_INACTIVE,
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.CSRF_FAILED,
        ErrorCode.RATE_LIMITED,
    ),
)
async def login(
    request: Request,
    body: LoginRequest,
    auth: AuthDep,
    strategy: StrategyDep,
    cookies: CookiesDep,
) -> JSONResponse:
    """Sets the session, refresh and CSRF cookies. A session (and its refresh token) sent
    with the request is revoked: a session the server did not issue at this login is never kept.

    For a user with a second factor the right password answers `mfa_required` instead,
    with only the challenge cookie (`__Secure-mfa`, 300 s); `POST /auth/mfa/verify`
    finishes the login."""
    sent = cookies_of(request.scope)
    presented = (sent.get(cookies.session), sent.get(cookies.refresh))
    user, outcome = await service.login(auth, strategy, body.username, body.password, presented=presented)
    if isinstance(outcome, service.SecondStep):
        step = MfaRequired(methods=outcome.methods, expires_in=outcome.expires_in)  # type: ignore[arg-type]
        response = JSONResponse(step.model_dump(mode="json"))
        cookies.set_mfa(response, outcome.cookie, outcome.expires_in)
        return response
    return logged_in(user, outcome, cookies)


@router.post(
    "/refresh",
    response_model=RefreshRead,
    summary="Rotate the session and refresh tokens",
    responses=responses(ErrorCode.INVALID_REFRESH_TOKEN, ErrorCode.CSRF_FAILED, ErrorCode.RATE_LIMITED),
)
async def refresh(request: Request, auth: AuthDep, cookies: CookiesDep) -> Response:
    """Uses the refresh cookie (sent only to /api/v1/auth). Both tokens are replaced and
    the old pair revoked at once; the login's absolute lifetime is never extended.

    A refresh token that was already rotated is refused: within
    REFRESH_REUSE_GRACE_SECONDS (two tabs refreshing at once) nothing else happens;
    later, it is treated as stolen and the whole login is revoked.

    A login rotates at most REFRESH_RATE_LIMIT times per window (429 with Retry-After;
    nothing changes). A refresh cookie sent twice, or one of another login than the
    session cookie sent with it, is refused with 401 and changes nothing."""
    try:
        sent = cookies_of(request.scope)
        # Two refresh cookies (one planted with Domain= from a sibling subdomain): neither
        # is trusted; get() answers None for an ambiguous name.
        new = await service.refresh(auth, sent.get(cookies.refresh), sent.get(cookies.session))
    except service.RefreshRefused as refused:
        response = error_response(refused.code)
        if refused.clear_cookies:
            cookies.clear_all(response)
        return response
    return _hand_over(RefreshRead(csrf_token=new.csrf_token, expires_in=new.tokens.session_ttl), new, cookies)


@router.post(
    "/logout",
    response_model=Detail,
    summary="Log out: revoke this session and its refresh token, clear the cookies",
    responses=responses(ErrorCode.NOT_AUTHENTICATED, ErrorCode.CSRF_FAILED),
)
async def logout(request: Request, auth: AuthDep, strategy: StrategyDep, cookies: CookiesDep) -> Response:
    """The cookies are cleared even when the session was already gone (then 401)."""
    carrier = await service.logout(auth, strategy, cookies_of(request.scope).get(cookies.session))
    if carrier is None:
        response = error_response(ErrorCode.NOT_AUTHENTICATED)
        cookies.clear_all(response)
        return response
    response = JSONResponse({"detail": "Logged out"})
    _session_cookie(carrier, response)  # cleared
    cookies.clear_refresh(response)
    cookies.clear_csrf(response)
    return response


@router.post(
    "/logout-all",
    response_model=Detail,
    summary="Log out everywhere: revoke every session of the user",
    responses=responses(ErrorCode.NOT_AUTHENTICATED, ErrorCode.CSRF_FAILED),
)
async def logout_all(auth: AuthDep, principal: CurrentPrincipal, cookies: CookiesDep) -> JSONResponse:
    await service.logout_all(auth, principal)
    response = JSONResponse({"detail": "Logged out everywhere"})
    cookies.clear_all(response)
    return response


@router.post(
    "/report-login",
    response_model=Detail,
    summary='"This wasn\'t me": end the login a new-device notice told of',
    responses=responses(ErrorCode.INVALID_TOKEN, ErrorCode.VALIDATION_ERROR, ErrorCode.CSRF_FAILED),
    dependencies=[per_ip()],
)
async def report_login(body: ReportLogin, auth: AuthDep) -> Detail:
    """The token is the one in the `new_device_login` mail's link (single use, 7 days).
    That login, and every session refreshed from it, is revoked whoever holds it; the
    account's security log records it. Changing the password is still up to the owner."""
    await service.report_login(auth, body.token)
    return Detail(detail="That login was ended")
