"""The configured providers, each an authlib OAuth 2.0 / OpenID Connect client.

authlib does the protocol: discovery (`<issuer>/.well-known/openid-configuration`), the
authorization URL with PKCE (S256) and a nonce, the code exchange, and the ID token's
checks against the provider's JWKS (signature, `iss`, `aud`, `exp`, `iat`, `nonce`,
`azp`, `at_hash`). Here, what authlib leaves to its caller: every call to a provider is
bounded (each HTTP call by PROVIDER_TIMEOUT, the calls of one request together by
PROVIDER_DEADLINE, so that a provider that is down or hangs answers within API.md's 5 s),
the metadata must name the configured issuer and use https (unless the provider allows
http on loopback, config.py), and the cached metadata is read again after an hour.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from joserfc.errors import JoseError

from app.config import OidcProvider, Settings
from app.state import Key

logger = logging.getLogger("app.auth.oidc")

PROVIDER_TIMEOUT = httpx.Timeout(2.0)  # connect, read, write, pool: each
PROVIDER_DEADLINE = 4.0  # every call of one request to the provider, together
METADATA_MAX_AGE = 3600.0
DISCOVERY_PATH = "/.well-known/openid-configuration"
ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


class Failure(StrEnum):
    """Why a sign-in failed: the `error` of the redirect to `/?error=...`."""

    INVALID_STATE = "invalid_state"
    EXCHANGE_FAILED = "exchange_failed"
    INVALID_ID_TOKEN = "invalid_id_token"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    ACCOUNT_EXISTS = "account_exists"
    EMAIL_NOT_VERIFIED = "email_not_verified"
    USER_INACTIVE = "user_inactive"
    IDENTITY_IN_USE = "identity_in_use"
    RATE_LIMITED = "rate_limited"
    ACCESS_DENIED = "access_denied"  # the provider answered with an error (the user said no)


class SignInFailed(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.value)
        self.failure = failure


@dataclass(frozen=True, slots=True)
class Claims:
    """What the ID token says about the user, once checked."""

    subject: str
    email: str | None
    email_verified: bool
    preferred_username: str | None


@dataclass(frozen=True, slots=True)
class Authorization:
    url: str
    oauth_state: str
    nonce: str
    code_verifier: str


class Provider:
    def __init__(self, config: OidcProvider, client: StarletteOAuth2App) -> None:
        self.config = config
        self.client = client

    @property
    def name(self) -> str:
        return self.config.name

    def _check_metadata(self, metadata: dict[str, Any]) -> None:
        # OpenID Connect Discovery 4.3: the issuer in the document is the one configured.
        if metadata.get("issuer") != self.config.issuer:
            raise ValueError("the discovery document names another issuer")
        for endpoint in ENDPOINTS:
            url = urlsplit(str(metadata.get(endpoint) or ""))
            if url.scheme != "https" and not (url.scheme == "http" and self.config.allow_http):
                raise ValueError(f"{endpoint} is not an https URL")

    async def _metadata(self) -> None:
        loaded = self.client.server_metadata.get("_loaded_at")
        if loaded is not None and time.time() - loaded > METADATA_MAX_AGE:
            self.client.server_metadata.clear()
        try:
            metadata = await self.client.load_server_metadata()
            self._check_metadata(metadata)
        except ValueError:
            self.client.server_metadata.clear()
            logger.warning("oidc provider %s: unusable discovery document", self.name)
            raise

    async def authorization(self, redirect_uri: str) -> Authorization:
        """The authorization request's URL and the secrets it is bound to."""
        try:
            async with asyncio.timeout(PROVIDER_DEADLINE):
                await self._metadata()
                made = await self.client.create_authorization_url(redirect_uri)
        except (httpx.HTTPError, TimeoutError, ValueError) as exc:
            logger.warning("oidc provider %s: discovery failed (%s)", self.name, type(exc).__name__)
            raise SignInFailed(Failure.PROVIDER_UNAVAILABLE) from None
        return Authorization(made["url"], made["state"], made["nonce"], made["code_verifier"])

    async def sign_in(self, redirect_uri: str, code: str, code_verifier: str, nonce: str) -> Claims:
        """Exchange `code` and check the ID token it brings; its claims."""
        try:
            async with asyncio.timeout(PROVIDER_DEADLINE):
                await self._metadata()
                token = await self._exchange(redirect_uri, code, code_verifier)
                claims = await self._id_token(token, nonce)
                if "email" not in claims:
                    claims = {**await self._userinfo(token, claims.get("sub")), **claims}
        except (httpx.HTTPError, TimeoutError, ValueError) as exc:
            logger.warning("oidc provider %s: unreachable (%s)", self.name, type(exc).__name__)
            raise SignInFailed(Failure.PROVIDER_UNAVAILABLE) from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise SignInFailed(Failure.INVALID_ID_TOKEN)
        email = claims.get("email")
        username = claims.get("preferred_username")
        return Claims(
            subject=subject,
            email=email if isinstance(email, str) and email else None,
            email_verified=claims.get("email_verified") is True,
            preferred_username=username if isinstance(username, str) else None,
        )

    async def _exchange(self, redirect_uri: str, code: str, code_verifier: str) -> dict[str, Any]:
        try:
            token: dict[str, Any] = await self.client.fetch_access_token(
                redirect_uri=redirect_uri, code=code, code_verifier=code_verifier
            )
        except httpx.TransportError:
            raise
        except (OAuthError, httpx.HTTPStatusError, ValueError, KeyError) as exc:
            # Refused by the provider (a bad, used or foreign code, a wrong verifier), or an
            # answer that is no token response. The error code only: never the code itself.
            logger.info("oidc provider %s: code exchange refused (%s)", self.name, getattr(exc, "error", ""))
            raise SignInFailed(Failure.EXCHANGE_FAILED) from None
        return token

    async def _userinfo(self, token: dict[str, Any], subject: object) -> dict[str, Any]:
        """The UserInfo claims, where a provider puts the scopes' claims rather than in the ID
        token (OpenID Connect Core 5.4). Its `sub` must be the ID token's (5.3.2)."""
        if not self.client.server_metadata.get("userinfo_endpoint"):
            return {}
        try:
            info = dict(await self.client.userinfo(token=token))
        except httpx.TransportError:
            raise
        except (httpx.HTTPStatusError, ValueError) as exc:
            logger.info("oidc provider %s: userinfo refused (%s)", self.name, type(exc).__name__)
            raise SignInFailed(Failure.EXCHANGE_FAILED) from None
        if info.get("sub") != subject:
            raise SignInFailed(Failure.INVALID_ID_TOKEN)
        return {key: info[key] for key in ("email", "email_verified", "preferred_username") if key in info}

    async def _id_token(self, token: dict[str, Any], nonce: str) -> dict[str, Any]:
        if not isinstance(token.get("id_token"), str):
            raise SignInFailed(Failure.INVALID_ID_TOKEN)
        options = {
            "iss": {"essential": True, "values": [self.config.issuer]},
            "aud": {"essential": True, "values": [self.config.client_id]},
            "exp": {"essential": True},
            "nonce": {"essential": True, "values": [nonce]},
        }
        try:
            claims = await self.client.parse_id_token(token, nonce, claims_options=options)
        except (httpx.HTTPError, TimeoutError):
            raise
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            logger.warning("oidc provider %s: ID token refused (%s)", self.name, type(exc).__name__)
            raise SignInFailed(Failure.INVALID_ID_TOKEN) from None
        return dict(claims)


class Providers:
    """Every configured provider, by name (OIDC_PROVIDERS, in its order)."""

    def __init__(self, settings: Settings) -> None:
        registry = OAuth()
        self.providers: dict[str, Provider] = {}
        for config in settings.oidc_providers:
            client = registry.register(
                name=config.name,
                client_id=config.client_id,
                client_secret=config.client_secret.get_secret_value(),
                server_metadata_url=config.issuer.rstrip("/") + DISCOVERY_PATH,
                client_kwargs={
                    "scope": " ".join(config.scopes),
                    "code_challenge_method": "S256",
                    "timeout": PROVIDER_TIMEOUT,
                },
            )
            self.providers[config.name] = Provider(config, client)

    def get(self, name: str) -> Provider | None:
        return self.providers.get(name)

    def names(self) -> list[str]:
        return list(self.providers)


OIDC: Key[Providers] = Key("oidc_providers")
