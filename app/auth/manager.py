"""fastapi-users' user database and manager, adapted to this service.

- The adapter flushes instead of committing: the request's session commits once.
- Hashing runs in a thread (argon2-cffi releases the GIL).
- The password policy of API.md section 3.
- Reset and verification mails are queued in the outbox (app/mail) by a unit of work of
  their own, in the background, so that forgot-password and request-verify-token answer a
  known email as fast as an unknown one (no write, no commit in the request for either);
  a reset ends every session.
- A reset token's password fingerprint is an HMAC, not the library's Argon2 hash: a slow
  hash for a known email took the login hashing slot, and the next login's wait told a
  registered email from an unknown one.
"""

import hmac
import logging
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi_users import BaseUserManager, IntegerIDMixin, exceptions, schemas
from fastapi_users.jwt import decode_jwt, generate_jwt
from fastapi_users_db_sqlalchemy import SQLAlchemyUserDatabase
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import repository
from app.auth.mail import run_in_background
from app.auth.notices import SECURITY_EVENT_HEADER, enqueue_notice, mail_link
from app.auth.passwords import hash_password, password_problem
from app.auth.sessions import SESSION_STORE
from app.auth.sessions.types import SessionStore
from app.auth.tokens import service as tokens
from app.db import SESSIONMAKER, SessionDep, after_commit, transaction
from app.errors import AppError, ErrorCode
from app.keys import derived_key, keyed_digest
from app.mail import enqueue_mail
from app.models import User
from app.state import SETTINGS, state_of

security_log = logging.getLogger("app.security")


class UserDatabase(SQLAlchemyUserDatabase[User, int]):
    """The library's adapter, flushing instead of committing: the request's session commits once."""

    async def create(self, create_dict: dict[str, Any]) -> User:
        return await repository.add(self.session, User(**create_dict))

    async def update(self, user: User, update_dict: dict[str, Any]) -> User:
        return await repository.update(self.session, user, update_dict)


class UserManager(IntegerIDMixin, BaseUserManager[User, int]):
    user_db: UserDatabase

    def __init__(
        self,
        user_db: UserDatabase,
        secret: str,
        *,
        store: SessionStore,
        sessionmaker: async_sessionmaker[AsyncSession],
        public_url: str | None,
    ) -> None:
        super().__init__(user_db)
        self.reset_password_token_secret = secret
        self.verification_token_secret = secret
        self.store = store
        self.sessionmaker = sessionmaker
        self.public_url = public_url

    async def validate_password(self, password: str, user: schemas.UC | User) -> None:
        problem = password_problem(
            password, username=getattr(user, "username", ""), email=getattr(user, "email", "")
        )
        if problem is not None:
            raise exceptions.InvalidPasswordException(reason=problem)

    async def create(
        self, user_create: schemas.UC, safe: bool = False, request: Request | None = None
    ) -> User:
        await self.validate_password(user_create.password, user_create)
        user_dict = user_create.create_update_dict() if safe else user_create.create_update_dict_superuser()
        if await repository.taken(self.user_db.session, user_dict["email"], user_dict["username"]):
            raise exceptions.UserAlreadyExists()
        user_dict["hashed_password"] = await hash_password(user_dict.pop("password"))
        try:
            # The unique indexes on lower(email) and lower(username) decide races.
            created = await self.user_db.create(user_dict)
        except IntegrityError as exc:
            raise exceptions.UserAlreadyExists() from exc
        await self.on_after_register(created, request)
        return created

    async def _update(self, user: User, update_dict: dict[str, Any]) -> User:
        validated: dict[str, Any] = {}
        for field, value in update_dict.items():
            if field == "email" and value.lower() != user.email.lower():
                if await repository.get_by_login(self.user_db.session, value) is not None:
                    raise exceptions.UserAlreadyExists()
                validated["email"] = value
                validated["is_verified"] = False
            elif field == "username" and value.lower() != user.username.lower():
                if await repository.get_by_login(self.user_db.session, value) is not None:
                    raise exceptions.UserAlreadyExists()
                validated["username"] = value
            elif field == "password" and value is not None:
                await self.validate_password(value, user)
                validated["hashed_password"] = await hash_password(value)
            else:
                validated[field] = value
        try:
            return await self.user_db.update(user, validated)
        except IntegrityError as exc:
            raise exceptions.UserAlreadyExists() from exc

    async def apply_changes(self, changes: Any, user: User, *, safe: bool) -> User:
        """`update` with the library's exceptions as our errors, so callers outside
        app/auth/ never handle fastapi-users types. `changes` has `create_update_dict()`."""
        try:
            return await self.update(changes, user, safe=safe)
        except exceptions.UserAlreadyExists as exc:
            raise AppError(ErrorCode.USER_ALREADY_EXISTS) from exc
        except exceptions.InvalidPasswordException as exc:
            raise AppError(ErrorCode.INVALID_PASSWORD, str(exc.reason)) from exc

    def _fingerprint(self, user: User) -> str:
        """Binds a reset token to the current password hash, so that it stops working once
        the password changes. Keyed: the token (a signed, not encrypted, JWT) shows it."""
        key = derived_key(str(self.reset_password_token_secret), "reset-fingerprint")
        return keyed_digest(key, user.hashed_password).hex()

    async def forgot_password(self, user: User, request: Request | None = None) -> None:
        """The library's, with a keyed hash (HMAC) as the fingerprint instead of Argon2:
        no slow hash runs for a known email, neither in the request (a 202 that waited for
        one would tell a known email from an unknown one, fastapi-users #1534) nor behind
        it (it took the hashing slot the next login waits for). The token is made and its
        mail queued in the background."""
        if not user.is_active:
            raise exceptions.UserInactive()
        run_in_background(self._mail_reset_token(user, request))

    async def _mail_reset_token(self, user: User, request: Request | None) -> None:
        token_data = {
            "sub": str(user.id),
            # Binds the token to the current hash: it stops working once the password changes.
            "password_fgpt": self._fingerprint(user),
            "aud": self.reset_password_token_audience,
        }
        token = generate_jwt(
            token_data, self.reset_password_token_secret, self.reset_password_token_lifetime_seconds
        )
        await self.on_after_forgot_password(user, token, request)

    async def reset_password(self, token: str, password: str, request: Request | None = None) -> User:
        """The library's, with the HMAC fingerprint of `_fingerprint`."""
        try:
            data = decode_jwt(token, self.reset_password_token_secret, [self.reset_password_token_audience])
            user_id = self.parse_id(data["sub"])
            fingerprint = data["password_fgpt"]
        except (jwt.PyJWTError, KeyError, exceptions.InvalidID) as exc:
            raise exceptions.InvalidResetPasswordToken() from exc
        user = await self.get(user_id)
        if not isinstance(fingerprint, str) or not hmac.compare_digest(fingerprint, self._fingerprint(user)):
            raise exceptions.InvalidResetPasswordToken()
        if not user.is_active:
            raise exceptions.UserInactive()
        updated = await self._update(user, {"password": password})
        await self.on_after_reset_password(updated, request)
        return updated

    async def _queue(self, to: str, subject: str, body: str, event: str) -> None:
        """The mail in a unit of work of its own: the token's creation is no change to the
        database, so this commit is the one that makes the mail durable."""
        async with transaction(self.sessionmaker) as session:
            enqueue_mail(session, to=to, subject=subject, body=body, headers={SECURITY_EVENT_HEADER: event})

    async def on_after_forgot_password(self, user: User, token: str, request: Request | None = None) -> None:  # noqa: ARG002 (the library's hook)
        minutes = self.reset_password_token_lifetime_seconds // 60
        body = (
            f"Someone, hopefully you, asked to reset the password of the account {user.username}.\n"
            f"{mail_link(self.public_url, '/reset-password', token)}\n\n"
            f"It works once, within {minutes} minutes. If you did not ask, ignore this mail:\n"
            "your password stays as it is."
        )
        # Already in the background (forgot_password): awaited, so a failure is logged there.
        await self._queue(user.email, "Reset your password", body, "password_reset_requested")

    async def on_after_request_verify(self, user: User, token: str, request: Request | None = None) -> None:  # noqa: ARG002 (the library's hook)
        minutes = self.verification_token_lifetime_seconds // 60
        body = (
            f"Confirm that this address belongs to the account {user.username}.\n"
            f"{mail_link(self.public_url, '/verify', token)}\n\n"
            f"It works within {minutes} minutes. If you did not ask, ignore this mail."
        )
        # In the background: a write and a commit in the request would tell a known,
        # unverified email from an unknown one by the time of the 202.
        run_in_background(
            self._queue(user.email, "Verify your email address", body, "verification_requested")
        )

    async def on_after_reset_password(self, user: User, request: Request | None = None) -> None:  # noqa: ARG002 (the library's hook)
        # Runs after the new hash is flushed and before the request's commit. Revoking
        # first fails safe: if Redis is down nothing commits (the caller gets 503 and may
        # retry with the same token); if the commit fails, the user logs in again with the
        # old password. A login that read the old hash before the commit can still finish
        # after it (sessions are not bound to the password): a narrow window, left open.
        revoked = await self.store.revoke_user(user.id)
        # A reset says the password may have been known to someone else: whatever they
        # made with it goes too (API.md section 11).
        tokens_revoked = await tokens.revoke_all(
            self.user_db.session, request, self.store, user.id, "password_reset"
        )
        details = {"sessions_revoked": revoked, "tokens_revoked": tokens_revoked}
        enqueue_notice(self.user_db.session, request, user, "password_reset", details=details)

        async def record() -> None:  # the outcome the user got: only once the new password is in
            security_log.info(
                "password reset",
                extra={"event": "password_reset", "actor": user.id, "sessions_revoked": revoked},
            )

        after_commit(self.user_db.session, record)


async def get_user_manager(request: Request, session: SessionDep) -> UserManager:
    """The manager of this request's unit of work (the library's routers take it too)."""
    state = state_of(request)
    settings = state[SETTINGS]
    return UserManager(
        UserDatabase(session, User),
        settings.signing_key,
        store=state[SESSION_STORE],
        sessionmaker=state[SESSIONMAKER],
        public_url=settings.public_url,
    )


UserManagerDep = Annotated[UserManager, Depends(get_user_manager)]
