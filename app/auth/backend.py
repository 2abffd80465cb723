"""fastapi-users wiring: the cookie transport, the session strategy, the manager dependency.

Login and logout are our routes (app/auth/router.py) rather than the library's
auth router: that one takes a form, answers 204, cannot set the CSRF cookie or
return the user, and does not clear the cookie of a session that is already gone.
They still go through the library's pieces: the Strategy protocol (write, read,
destroy a token) and CookieTransport (the session cookie).
"""

from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi_users.authentication import CookieTransport
from fastapi_users.authentication.strategy import Strategy

from app.audit import client_ip
from app.auth.cache import snapshot
from app.auth.cookies import CookiePolicy
from app.auth.manager import UserDatabase, UserManager
from app.auth.sessions import SessionStore, Tokens
from app.config import Settings
from app.db import SessionDep
from app.models import User

USER_AGENT_MAX = 256


class SessionCookieTransport(CookieTransport):
    """fastapi-users' cookie transport, writing the contract's exact Set-Cookie header."""

    def __init__(self, policy: CookiePolicy) -> None:
        super().__init__(
            cookie_name=policy.session,
            cookie_max_age=policy.session_max_age,
            cookie_secure=policy.secure,
            cookie_samesite="strict" if policy.session_samesite == "Strict" else "lax",
        )
        self.policy = policy

    def set_cookie(self, response: Response, token: str) -> Response:
        return self._set_login_cookie(response, token)

    def _set_login_cookie(self, response: Response, token: str) -> Response:
        self.policy.set_session(response, token)
        return response

    def _set_logout_cookie(self, response: Response) -> Response:
        self.policy.clear_session(response)
        return response


class SessionStrategy(Strategy[User, int]):
    """Opaque tokens in the session store, recorded with the client that logged in.

    `write_token` is the library's protocol; our login route calls `start_login`,
    which also issues the refresh token of the new login.
    """

    def __init__(self, store: SessionStore, settings: Settings, *, user_agent: str, ip: str) -> None:
        self.store = store
        self.settings = settings
        self.user_agent = user_agent[:USER_AGENT_MAX]
        self.ip = ip

    async def start_login(self, user: User) -> Tokens:
        return await self.store.create(
            snapshot(user),
            session_ttl=self.settings.access_token_seconds,
            refresh_ttl=self.settings.refresh_token_seconds,
            user_agent=self.user_agent,
            ip=self.ip,
        )

    async def read_token(self, token: str | None, user_manager: UserManager) -> User | None:  # type: ignore[override]
        active = await self.store.read(token) if token else None
        if active is None:
            return None
        return await user_manager.user_db.get(active.user_id)

    async def write_token(self, user: User) -> str:
        return (await self.start_login(user)).session

    async def destroy_token(self, token: str, user: User) -> None:  # noqa: ARG002
        await self.store.revoke(token)


def get_strategy(request: Request) -> SessionStrategy:
    return SessionStrategy(
        request.app.state.session_store,
        request.app.state.settings,
        user_agent=request.headers.get("user-agent", ""),
        ip=client_ip(request),
    )


async def get_user_db(session: SessionDep) -> UserDatabase:
    return UserDatabase(session, User)


async def get_user_manager(
    request: Request, user_db: Annotated[UserDatabase, Depends(get_user_db)]
) -> UserManager:
    return UserManager(user_db, request.app.state.settings.signing_key)


UserManagerDep = Annotated[UserManager, Depends(get_user_manager)]
StrategyDep = Annotated[SessionStrategy, Depends(get_strategy)]
