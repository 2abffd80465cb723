"""Security notices (API.md sections 9 and 10): a mail to the account's address with the
header `X-Security-Event: <event>`, the security log's record of the same event, and an
audit record, for every change to how the account is protected.

A notice is queued in the outbox (app/mail) inside the transaction of the change it tells
of, before the commit, together with its security log row: both exist if and only if the
change committed, and an SMTP outage delays the mail without losing it. Notices carry no
secret; the one link a notice may hold (`new_device_login`: "this wasn't me") is a
single-use token that can only end a login.
"""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.audit import audit, client_ip
from app.auth.principal import SessionUser
from app.db import after_commit
from app.mail import enqueue_mail
from app.models import User
from app.security_log import SecurityEvent, record_event

SECURITY_EVENT_HEADER = "X-Security-Event"

# event: (subject, what happened, in a sentence)
NOTICES: dict[str, tuple[str, str]] = {
    "mfa_enabled": ("Two-step login turned on", "an authenticator app (TOTP) was set up as a second factor"),
    "mfa_disabled": (
        "Two-step login turned off",
        "the authenticator app (TOTP) was removed as a second factor",
    ),
    "passkey_added": ("A passkey was added", "a passkey was registered"),
    "passkey_removed": ("A passkey was removed", "a passkey was removed"),
    "recovery_code_used": (
        "A recovery code was used",
        "a recovery code was used to log in or confirm it was you",
    ),
    "recovery_codes_regenerated": (
        "New recovery codes",
        "new recovery codes were generated; the old ones no longer work",
    ),
    "mfa_reset": ("Second factors removed", "an operator removed every second factor, at your request"),
    "password_changed": ("Your password was changed", "the password was changed"),
    "password_reset": ("Your password was reset", "the password was reset with a link sent to this address"),
    "email_change_requested": (
        "A new email address was requested",
        "a change of the account's email address was requested; it takes effect only once\n"
        "the new address confirms it",
    ),
    "email_changed": ("Your email address was changed", "the account's email address was changed"),
    "identity_linked": (
        "A sign-in provider was linked",
        "an identity at a sign-in provider was linked: it can now log in to the account",
    ),
    "identity_unlinked": (
        "A sign-in provider was unlinked",
        "an identity at a sign-in provider was unlinked: it can no longer log in to the account",
    ),
    "new_device_login": ("A new login to your account", "someone logged in from a browser not seen before"),
    "account_deleted": ("Your account was deleted", "the account and its data were deleted"),
}


def mail_link(public_url: str | None, path: str, token: str) -> str:
    """A link when the public URL is configured (never built from the Host header, which
    the caller picks: that would mail the token to an attacker's site), else the token.
    The token rides in the fragment, which browsers send neither to servers nor in Referer."""
    if public_url:
        return f"Open this link:\n\n  {public_url.rstrip('/')}{path}#token={token}"
    return f"Use this token:\n\n  {token}"


def _body(username: str, happened: str, ip: str, link: str | None) -> str:
    source = f" (from the address {ip})" if ip else ""
    if link is not None:
        return (
            f"On the account {username}, {happened}{source}.\n\n"
            "If this was you, there is nothing to do. If it was not, end that login now (the link\n"
            f"works once, for 7 days), then change your password:\n\n{link}"
        )
    return (
        f"On the account {username}, {happened}{source}.\n\n"
        "If this was you, there is nothing to do. If it was not, change your password, log out\n"
        "everywhere from the Security page, and review your second factors."
    )


def notice_mail(
    username: str, event: str, ip: str = "", link: str | None = None
) -> tuple[str, str, dict[str, str]]:
    """(subject, body, headers) of the notice."""
    subject, happened = NOTICES[event]
    return subject, _body(username, happened, ip, link), {SECURITY_EVENT_HEADER: event}


def enqueue_notice(
    session: AsyncSession,
    request: HTTPConnection | None,
    user: User | SessionUser,
    event: str,
    *,
    details: dict[str, Any] | None = None,
    to: str | None = None,
    link: str | None = None,
) -> None:
    """Queue the notice in `session`'s unit of work (before its commit), to `to` (default:
    the account's address), with its security log row; audited once it commits. `link`:
    the text of mail_link() for the one notice that carries one."""
    subject, body, headers = notice_mail(
        user.username, event, client_ip(request) if request is not None else "", link
    )
    enqueue_mail(session, to=to or user.email, subject=subject, body=body, headers=headers)
    if event in SecurityEvent.__members__.values():
        record_event(session, request, user.id, SecurityEvent(event), details)
    user_id = user.id

    async def audited() -> None:
        audit(request, "security_notice", event, actor=user_id)

    after_commit(session, audited)
