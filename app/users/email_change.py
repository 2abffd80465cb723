"""A new email address, confirmed from that address (API.md section 4). Never commits.

Who holds a session and the password could otherwise move the account to an address of
their own in one request and take it over through a password reset. So the change asks
for the current password, takes effect only from a link mailed to the new address, and
each step tells the current address (`email_change_requested`, then `email_changed` to
the old one). Only the latest request's link works (each request spends the ones before),
and an address taken between the request and the click is a 409 then.
"""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.auth import repository as users
from app.auth.account import tokens as account_tokens
from app.auth.notices import SECURITY_EVENT_HEADER, enqueue_notice, mail_link
from app.auth.passwords import verify_password
from app.auth.principal import Principal
from app.db import get_row
from app.errors import AppError, ErrorCode
from app.mail import enqueue_mail
from app.models import User

TAKEN = "An account with this email address already exists."


async def request_change(
    session: AsyncSession,
    request: HTTPConnection,
    principal: Principal,
    email: str,
    current_password: str,
    public_url: str | None,
) -> None:
    # Read, not locked: the password is hashed next (a tenth of a second), and nothing here
    # changes the user; the confirmation locks the row.
    user = await get_row(session, User, principal.user.id)
    if user is None:  # deleted between the session check and now
        raise AppError(ErrorCode.NOT_AUTHENTICATED)
    verified, _ = await verify_password(current_password, user.hashed_password)
    if not verified:
        raise AppError(ErrorCode.INVALID_CURRENT_PASSWORD)
    if email.lower() == user.email.lower():
        raise AppError(ErrorCode.USER_ALREADY_EXISTS, "This is already the account's email address.")
    if await users.email_taken(session, email, but=user.id):
        raise AppError(ErrorCode.USER_ALREADY_EXISTS, TAKEN)
    token = await account_tokens.issue(
        session, user.id, account_tokens.EMAIL_CHANGE, {"email": email}, only_latest=True
    )
    enqueue_mail(
        session,
        to=email,
        subject="Confirm your new email address",
        body=(
            f"To make {email} the address of the account {user.username}, confirm it.\n\n"
            f"{mail_link(public_url, '/confirm-email', token)}\n\n"
            "The link works once, for 24 hours. If you did not ask for this, ignore this mail."
        ),
        headers={SECURITY_EVENT_HEADER: "email_confirmation"},
    )
    # The notice writes its security-log row too (one row per event).
    enqueue_notice(session, request, user, "email_change_requested", details={"new_email": email})


async def confirm_change(session: AsyncSession, request: HTTPConnection, token: str) -> User:
    spent = await account_tokens.spend(session, token, account_tokens.EMAIL_CHANGE)
    if spent is None:
        raise AppError(ErrorCode.INVALID_TOKEN, "This link is invalid, used or expired.")
    user_id, data = spent
    user = await users.lock(session, user_id)
    if user is None:
        raise AppError(ErrorCode.INVALID_TOKEN, "This link is invalid, used or expired.")
    new, old = str(data["email"]), user.email
    if await users.email_taken(session, new, but=user.id):
        raise AppError(ErrorCode.USER_ALREADY_EXISTS, TAKEN)
    # Through the ORM, so that the session store's snapshot of the user follows.
    user.email = new
    user.is_verified = True  # the link reached that mailbox
    try:
        await session.flush()
    except IntegrityError as exc:  # registered a moment ago, past the check above
        raise AppError(ErrorCode.USER_ALREADY_EXISTS, TAKEN) from exc
    details = {"old_email": old, "new_email": new}
    enqueue_notice(session, request, user, "email_changed", to=old, details=details)
    return user
