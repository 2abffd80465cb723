"""All configuration, read once from the environment (and `.env`) by pydantic-settings."""

import ipaddress
import json
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The value shipped in .env.example: refused in production like any weak key.
EXAMPLE_SECRET_KEY = "change-me-to-a-random-string-of-at-least-32-characters"

Environment = Literal["development", "test", "staging", "production"]


def is_loopback_host(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


class OidcProvider(BaseModel):
    """One entry of OIDC_PROVIDERS (API.md section 11). Its metadata comes from
    `<issuer>/.well-known/openid-configuration`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="In the routes' paths.")
    issuer: str = Field(max_length=2048)
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scopes: list[str] = ["openid", "email", "profile"]
    # Plain http to the provider, for a provider on this machine only (the tests' own, a
    # sidecar): tokens never cross a network in clear. Anywhere else https is required.
    allow_http: bool = False

    @model_validator(mode="after")
    def _checked(self) -> "OidcProvider":
        url = urlsplit(self.issuer)
        if url.scheme != "https" and not (url.scheme == "http" and self.allow_http):
            raise ValueError(f"OIDC_PROVIDERS {self.name}: the issuer must be an https URL")
        if url.scheme == "http" and not is_loopback_host(url.hostname):
            raise ValueError(f"OIDC_PROVIDERS {self.name}: allow_http is for a loopback issuer only")
        if url.query or url.fragment or not url.hostname:
            raise ValueError(
                f"OIDC_PROVIDERS {self.name}: the issuer must be a URL without query or fragment"
            )
        if "openid" not in self.scopes:
            raise ValueError(f"OIDC_PROVIDERS {self.name}: scopes must include openid")
        return self


class Settings(BaseSettings):
    # env_ignore_empty: `DOCS_ENABLED=` in .env means "default", as .env.example writes it.
    model_config = SettingsConfigDict(env_file=".env", env_ignore_empty=True, extra="ignore", frozen=True)

    environment: Environment = "development"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    port: int = 8000

    # Unset both to get the embedded default: SQLite file + in-process session store.
    database_url: str | None = None
    redis_url: str | None = None
    sqlite_path: Path = Path("data/app.db")
    db_pool_size: int = Field(10, ge=1)
    db_max_overflow: int = Field(10, ge=0)
    # Every key this process writes starts with this, so that tests and several
    # deployments can share one Redis without touching each other's keys.
    redis_key_prefix: str = "app:"
    redis_max_connections: int = Field(100, ge=1)

    # How long a request waits on a dependency that stops answering before it gives up
    # with 503 (API.md section 1: within 5 s). README "Failure behaviour" says what each
    # bounds and why its value; a request meets an outage at one call, so the worst case
    # is one of these chains, not their sum.
    # Redis: connecting, waiting for a pooled connection, and each command's reply. The
    # session scripts' deadline is derived from it (app/auth/sessions/types.py).
    redis_timeout_seconds: float = Field(1.0, gt=0, le=3)
    # PostgreSQL: opening a connection, waiting for a pooled one, and every statement and
    # commit as the client sees it; the server's own statement_timeout fires first.
    db_connect_timeout_seconds: float = Field(1.0, gt=0, le=3)
    db_pool_timeout_seconds: float = Field(1.0, gt=0, le=3)
    db_command_timeout_seconds: float = Field(1.0, gt=0, le=3)
    db_statement_timeout_ms: int = Field(750, gt=0)

    secret_key: str | None = None
    # Kept for compatibility with the service description; session tokens are opaque,
    # never JWTs, so this only names the algorithm of the reset/verify tokens.
    algorithm: str = "HS256"
    access_token_expire_minutes: int = Field(30, ge=1)
    refresh_token_expire_days: int = Field(7, ge=1)
    refresh_reuse_grace_seconds: int = Field(10, ge=0)

    cookie_secure: bool | None = None  # None: true except in development
    cookie_samesite: Literal["lax", "strict"] = "lax"
    cors_origins: Annotated[list[str], NoDecode] = []
    forwarded_allow_ips: str = "127.0.0.1"
    login_rate_limit: str = "5/minute"
    register_rate_limit: str = "10/hour"
    # Rotations per login (the SPA refreshes once per session lifetime, tabs share it):
    # a client looping on refresh gets 429 instead of filling Redis.
    refresh_rate_limit: str = "10/minute"

    # Second factors and re-authentication (API.md section 9). A session is fresh for this
    # long after a factor was presented; sensitive operations ask for a fresh one.
    reauth_max_age_seconds: int = Field(300, ge=1)
    admin_require_mfa: bool | None = None  # None: on in production, off otherwise
    # Passkeys: the relying party id (a domain: passkeys are bound to it, so it must stay
    # the same for as long as they should work). Unset: the host of PUBLIC_URL, else of
    # the request.
    webauthn_rp_id: str | None = None
    webauthn_rp_name: str = "Cookie-session backend"

    # The security log (API.md section 10): events older than this are deleted (hourly).
    security_log_retention_days: int = Field(365, ge=1)

    docs_enabled: bool | None = None  # None: on outside production
    sentry_dsn: str | None = None
    # FastAPI's own OpenTelemetry hooks (spans, metrics, logs per request), for a deployment
    # that configures an OpenTelemetry SDK. Off, FastAPI skips them without asking the
    # OpenTelemetry API on every request whether a provider was set (README "Tracing").
    otel_enabled: bool = False

    first_superuser_email: str | None = None
    first_superuser_username: str | None = None
    first_superuser_password: str | None = None

    # Outgoing mail (reset and verification tokens): SMTP when SMTP_HOST is set, else
    # the log (app/mail/senders.py), which shows the token only in development and test.
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    smtp_starttls: bool = True
    # The mail outbox (app/mail): whether this process sends what is queued (false: it only
    # queues, another replica sends), how often it looks for mail queued elsewhere, the
    # first retry's delay (doubling, at most an hour) and the attempts before giving up.
    mail_send: bool = True
    mail_poll_seconds: float = Field(5.0, gt=0)
    mail_retry_seconds: float = Field(30.0, gt=0)
    mail_max_attempts: int = Field(12, ge=1)
    # The origin users reach the service at (https://app.example.com), for the links in
    # mails; never taken from the request's Host header, which a caller chooses. Unset:
    # the mail carries the token as text only.
    public_url: str | None = None

    # Sign-in with OpenID Connect (API.md section 11): a JSON list of {name, issuer,
    # client_id, client_secret, scopes?}. Empty: no provider, the routes list none.
    oidc_providers: Annotated[list[OidcProvider], NoDecode] = []

    @field_validator("environment", "log_level", "cookie_samesite", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = json.loads(text)
            else:
                value = text.split(",")
        if isinstance(value, list):
            return [str(v).strip().rstrip("/") for v in value if str(v).strip()]
        return value

    @field_validator("oidc_providers", mode="before")
    @classmethod
    def _parse_providers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else []
        return value

    @field_validator("oidc_providers")
    @classmethod
    def _unique_names(cls, value: list[OidcProvider]) -> list[OidcProvider]:
        names = [provider.name for provider in value]
        if len(set(names)) != len(names):
            raise ValueError("OIDC_PROVIDERS: each provider needs a name of its own")
        return value

    @field_validator("database_url", "redis_url", "secret_key", "sentry_dsn", "webauthn_rp_id", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _production_guard(self) -> "Settings":
        if self.environment != "production":
            return self
        key = self.secret_key or ""
        if len(key) < 32 or key == EXAMPLE_SECRET_KEY:
            raise ValueError(
                "SECRET_KEY must be set to a random value of at least 32 characters "
                "(not the example's) when ENVIRONMENT=production"
            )
        if self.cookie_secure is False:
            raise ValueError("COOKIE_SECURE=false is refused when ENVIRONMENT=production")
        if not self.redis_url:
            raise ValueError("REDIS_URL is required when ENVIRONMENT=production")
        return self

    @model_validator(mode="after")
    def _smtp_needs_sender(self) -> "Settings":
        if self.smtp_host and not self.smtp_from:
            raise ValueError("SMTP_FROM is required when SMTP_HOST is set")
        return self

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is None:
            return self.environment != "development"
        return self.cookie_secure

    @property
    def show_docs(self) -> bool:
        if self.docs_enabled is None:
            return self.environment != "production"
        return self.docs_enabled

    @property
    def require_admin_mfa(self) -> bool:
        if self.admin_require_mfa is None:
            return self.environment == "production"
        return self.admin_require_mfa

    @property
    def embedded(self) -> bool:
        """No PostgreSQL configured: SQLite file, migrations applied at start."""
        return self.database_url is None

    @cached_property
    def signing_key(self) -> str:
        # Outside production a missing key gets a per-process random one: sessions
        # survive (they live in the store) but CSRF tokens die with the process.
        return self.secret_key or secrets.token_urlsafe(32)

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url is None:
            return f"sqlite+aiosqlite:///{self.sqlite_path}"
        url = self.database_url
        for plain in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
            if url.startswith(plain):
                return "postgresql+asyncpg://" + url[len(plain) :]
        return url

    @property
    def access_token_seconds(self) -> int:
        return self.access_token_expire_minutes * 60

    @property
    def refresh_token_seconds(self) -> int:
        return self.refresh_token_expire_days * 86400


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
