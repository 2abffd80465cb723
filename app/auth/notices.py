"""Security notices (API.md sections 9 and 10): a mail to the account's address with the
header `X-Security-Event: <event>`, and an audit record, for every change to how the
account is protected.

A notice is sent once the change it tells of has committed, never for one that did not.
Until the durable mail queue (issue 15) they go out as the reset mails do: in the
background, a failure logged. They carry no secret and no link that acts on the account.
"""

from starlette.requests import HTTPConnection

from app.audit import audit, client_ip
from app.auth.mail import MailSender, send_in_background

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
}


def _body(username: str, happened: str, ip: str) -> str:
    source = f" (from the address {ip})" if ip else ""
    return (
        f"On the account {username}, {happened}{source}.\n\n"
        "If this was you, there is nothing to do. If it was not, change your password, log out\n"
        "everywhere from the Security page, and review your second factors."
    )


def notice_mail(username: str, event: str, ip: str = "") -> tuple[str, str, dict[str, str]]:
    """(subject, body, headers) of the notice."""
    subject, happened = NOTICES[event]
    return subject, _body(username, happened, ip), {SECURITY_EVENT_HEADER: event}


def send_notice(
    mail: MailSender, request: HTTPConnection | None, to: str, username: str, user_id: int, event: str
) -> None:
    """Mail the notice now (in the background) and audit it."""
    subject, body, headers = notice_mail(username, event, client_ip(request) if request is not None else "")
    send_in_background(mail, to, subject, body, headers)
    audit(request, "security_notice", event, actor=user_id)
