"""Cookie names and exact Set-Cookie headers (API.md section 2)."""

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends
from starlette.responses import Response

from app.config import Settings
from app.state import Key, dependency

REFRESH_COOKIE_PATH = "/api/v1/auth"
OIDC_COOKIE_PATH = "/api/v1/auth/oidc"
DEVICE_COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest a browser keeps a cookie (RFC 6265bis)


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    session: str
    refresh: str
    csrf: str
    mfa: str  # a pending second step (API.md section 9)
    device: str  # a browser this account has logged in from (API.md section 3)
    oidc: str  # a sign-in at an identity provider under way (API.md section 11)
    secure: bool
    session_samesite: Literal["Lax", "Strict"]
    session_max_age: int

    @classmethod
    def from_settings(cls, settings: Settings) -> "CookiePolicy":
        secure = settings.secure_cookies
        # The prefixes make browsers refuse these cookies when planted from a
        # sibling subdomain or over plain http; they require Secure, so only then.
        return cls(
            session="__Host-session" if secure else "session",
            refresh="__Secure-refresh" if secure else "refresh",
            csrf="__Host-csrftoken" if secure else "csrftoken",
            mfa="__Secure-mfa" if secure else "mfa",
            device="__Host-device" if secure else "device",
            oidc="__Secure-oidc" if secure else "oidc",
            secure=secure,
            session_samesite="Strict" if settings.cookie_samesite == "strict" else "Lax",
            session_max_age=settings.access_token_seconds,
        )

    def _header(
        self, name: str, value: str, *, max_age: int, path: str, http_only: bool, samesite: str
    ) -> str:
        # Written by hand rather than with http.cookies so that the attributes are
        # exactly the contract's (`SameSite=Lax`, not `lax`) and never carry `Domain`.
        parts = [f"{name}={value}"]
        if http_only:
            parts.append("HttpOnly")
        parts += [f"Max-Age={max_age}", f"Path={path}", f"SameSite={samesite}"]
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)

    def set_session(self, response: Response, token: str) -> None:
        response.headers.append(
            "set-cookie",
            self._header(
                self.session,
                token,
                max_age=self.session_max_age,
                path="/",
                http_only=True,
                samesite=self.session_samesite,
            ),
        )

    def clear_session(self, response: Response) -> None:
        response.headers.append(
            "set-cookie",
            self._header(
                self.session, "", max_age=0, path="/", http_only=True, samesite=self.session_samesite
            ),
        )

    def set_refresh(self, response: Response, token: str, max_age: int) -> None:
        response.headers.append(
            "set-cookie",
            self._header(
                self.refresh,
                token,
                max_age=max_age,
                path=REFRESH_COOKIE_PATH,
                http_only=True,
                samesite="Strict",
            ),
        )

    def clear_refresh(self, response: Response) -> None:
        response.headers.append(
            "set-cookie",
            self._header(
                self.refresh, "", max_age=0, path=REFRESH_COOKIE_PATH, http_only=True, samesite="Strict"
            ),
        )

    def set_csrf(self, response: Response, token: str, max_age: int) -> None:
        # Readable by JavaScript on purpose: the SPA copies it into X-CSRF-Token.
        response.headers.append(
            "set-cookie",
            self._header(self.csrf, token, max_age=max_age, path="/", http_only=False, samesite="Strict"),
        )

    def clear_csrf(self, response: Response) -> None:
        response.headers.append(
            "set-cookie",
            self._header(self.csrf, "", max_age=0, path="/", http_only=False, samesite="Strict"),
        )

    def set_mfa(self, response: Response, token: str, max_age: int) -> None:
        response.headers.append(
            "set-cookie",
            self._header(
                self.mfa, token, max_age=max_age, path=REFRESH_COOKIE_PATH, http_only=True, samesite="Strict"
            ),
        )

    def clear_mfa(self, response: Response) -> None:
        response.headers.append(
            "set-cookie",
            self._header(
                self.mfa, "", max_age=0, path=REFRESH_COOKIE_PATH, http_only=True, samesite="Strict"
            ),
        )

    def set_device(self, response: Response, token: str) -> None:
        response.headers.append(
            "set-cookie",
            self._header(
                self.device, token, max_age=DEVICE_COOKIE_MAX_AGE, path="/", http_only=True, samesite="Strict"
            ),
        )

    def set_oidc(self, response: Response, token: str, max_age: int) -> None:
        # Lax, not Strict: it must come back with the provider's top-level redirect to the
        # callback, a cross-site navigation.
        response.headers.append(
            "set-cookie",
            self._header(
                self.oidc, token, max_age=max_age, path=OIDC_COOKIE_PATH, http_only=True, samesite="Lax"
            ),
        )

    def clear_oidc(self, response: Response) -> None:
        response.headers.append(
            "set-cookie",
            self._header(self.oidc, "", max_age=0, path=OIDC_COOKIE_PATH, http_only=True, samesite="Lax"),
        )

    def clear_all(self, response: Response) -> None:
        """Logout, in the browser: the session, refresh and CSRF cookies."""
        self.clear_session(response)
        self.clear_refresh(response)
        self.clear_csrf(response)


COOKIES: Key[CookiePolicy] = Key("cookies")
CookiesDep = Annotated[CookiePolicy, Depends(dependency(COOKIES))]
