"""The closed set of security events (API.md section 10)."""

from enum import StrEnum


class SecurityEvent(StrEnum):
    # Sessions (they live in the session store: no database change comes with them).
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"  # a wrong password for this account
    LOGOUT = "logout"
    LOGOUT_ALL = "logout_all"
    SESSION_REVOKED = "session_revoked"
    REFRESH_REUSE_DETECTED = "refresh_reuse_detected"
    REAUTHENTICATED = "reauthenticated"
    # The notice events: each comes with a change to the account, in the same transaction.
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_RESET = "password_reset"
    EMAIL_CHANGE_REQUESTED = "email_change_requested"
    EMAIL_CHANGED = "email_changed"
    MFA_ENABLED = "mfa_enabled"
    MFA_DISABLED = "mfa_disabled"
    PASSKEY_ADDED = "passkey_added"
    PASSKEY_REMOVED = "passkey_removed"
    RECOVERY_CODE_USED = "recovery_code_used"
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"
    NEW_DEVICE_LOGIN = "new_device_login"
    ACCOUNT_DELETED = "account_deleted"
    # An identity at an OpenID Connect provider (API.md section 11) became, or stopped
    # being, a way into the account.
    IDENTITY_LINKED = "identity_linked"
    IDENTITY_UNLINKED = "identity_unlinked"
    # Beyond the notices: "this wasn't me" from a new_device_login notice ended a login.
    LOGIN_REPORTED = "login_reported"
    # Personal access tokens (API.md section 11); `details` names the token, never its value.
    TOKEN_CREATED = "token_created"
    TOKEN_REVOKED = "token_revoked"
