"""fastapi-users' authentication backend: its CookieTransport writes the session cookie,
our SessionStrategy makes and ends logins in the session store.

Which piece of the library carries which part of a flow (the flows are in service.py):
- login: `backend.login(strategy, user)`: `write_token` starts a login in the store and
  the transport's `get_login_response` sets the session cookie; the service puts our
  JSON body, the refresh cookie and the CSRF cookie around it.
- logout: `backend.logout(strategy, user, token)`: `destroy_token` ends the login of the
  session cookie and that of the refresh cookie; the transport's `get_logout_response`
  clears the session cookie, the service the other two.
- refresh is not the library's (it has no refresh tokens): the store rotates the pair and
  the transport writes the new session cookie.
- reading the session on every request is not the library's either: its Authenticator
  loads the user from the database each time, while deps.py answers from one Redis round
  trip. So the strategy has no `read_token`.
"""

from typing import Annotated, cast

from fastapi import Depends, Request, Response
from fastapi_users.authentication import AuthenticationBackend, CookieTransport
from fastapi_users.authentication.strategy import Strategy
from fastapi_users.types import DependencyCallable

from app.audit import client_ip
from app.auth.cookies import COOKIES, CookiePolicy
from app.auth.principal import Assurance, snapshot
from app.auth.sessions import SESSION_STORE
from app.auth.sessions.types import SessionStore, Tokens
from app.config import Settings
from app.cookie_header import cookies_of
from app.models import User
from app.state import SETTINGS, Key, state_of

USER_AGENT_MAX = 256
BACKEND_NAME = "session"


class SessionCookieTransport(CookieTransport):
    """The library's cookie transport, writing the contract's exact Set-Cookie headers
    (`SameSite=Lax`, never `Domain`) where Starlette's `set_cookie` would write `samesite=lax`.
    Its `get_login_response` and `get_logout_response` call these two."""

    def __init__(self, policy: CookiePolicy) -> None:
        super().__init__(
            cookie_name=policy.session,
            cookie_max_age=policy.session_max_age,
            cookie_secure=policy.secure,
            cookie_samesite="strict" if policy.session_samesite == "Strict" else "lax",
        )
        self.policy = policy

    def _set_login_cookie(self, response: Response, token: str) -> Response:
        self.policy.set_session(response, token)
        return response

    def _set_logout_cookie(self, response: Response) -> Response:
        self.policy.clear_session(response)
        return response


class SessionStrategy:
    """One request's strategy: what `write_token` issued and what `destroy_token` ended stay
    on it for the caller (a login also has a refresh token; a logout names who left)."""

    def __init__(
        self, store: SessionStore, settings: Settings, *, user_agent: str, ip: str, refresh_token: str | None
    ) -> None:
        self.store = store
        self.settings = settings
        self.user_agent = user_agent[:USER_AGENT_MAX]
        self.ip = ip
        self.refresh_token = refresh_token
        self.issued: Tokens | None = None
        self.ended: tuple[int, str] | None = None  # (user id, login id)
        # How the login being made was authenticated (a second step, a passkey); None: a
        # password alone, now.
        self.assurance: Assurance | None = None

    async def write_token(self, user: User) -> str:
        self.issued = await self.store.create(
            snapshot(user),
            session_ttl=self.settings.access_token_seconds,
            refresh_ttl=self.settings.refresh_token_seconds,
            user_agent=self.user_agent,
            ip=self.ip,
            assurance=self.assurance or Assurance.password(),
        )
        return self.issued.session

    async def destroy_token(self, token: str, user: object) -> None:  # noqa: ARG002  (the store knows whose)
        # Both, whichever is still alive: a refresh token outliving its session is a login too.
        self.ended = await self.store.end_login(token or None, self.refresh_token)


async def get_strategy(request: Request) -> SessionStrategy:
    state = state_of(request)
    return SessionStrategy(
        state[SESSION_STORE],
        state[SETTINGS],
        user_agent=request.headers.get("user-agent", ""),
        ip=client_ip(request),
        refresh_token=cookies_of(request.scope).get(state[COOKIES].refresh),
    )


def as_library_strategy(strategy: SessionStrategy) -> Strategy[User, int]:
    """The library types every strategy as its Strategy protocol, whose `read_token` ours
    leaves out on purpose (see above); the backend calls only the other two."""
    return cast("Strategy[User, int]", strategy)


def create_backend(cookies: CookiePolicy) -> AuthenticationBackend[User, int]:
    get = cast("DependencyCallable[Strategy[User, int]]", get_strategy)
    return AuthenticationBackend(BACKEND_NAME, SessionCookieTransport(cookies), get)


BACKEND: Key[AuthenticationBackend[User, int]] = Key("auth_backend")
StrategyDep = Annotated[SessionStrategy, Depends(get_strategy)]
