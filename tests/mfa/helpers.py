"""Second factors from a test's side: TOTP codes from pyotp (each step is accepted once per
user, so `Totp.code()` hands out a later step each time), the software authenticator for
passkeys, and the two-step login."""

import time
from collections.abc import Callable

import httpx
import pyotp

from tests.fixtures.authenticator import SoftAuthenticator
from tests.fixtures.client import API, Account, ApiClient, login, register

ORIGIN = "https://testserver"  # the in-process clients' base URL: the RP id is its host


class Totp:
    """An authenticator app: a code per call, each for a later time step than the last,
    within the server's window of one step either side."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.totp = pyotp.TOTP(secret)
        self.last_step: int | None = None

    def code(self) -> str:
        while True:
            current = int(time.time() // 30)
            step = current - 1 if self.last_step is None else max(self.last_step + 1, current - 1)
            if step <= current + 1:
                self.last_step = step
                return self.totp.generate_otp(step)
            time.sleep(0.5)

    def wrong_code(self) -> str:
        current = int(time.time() // 30)
        right = {self.totp.generate_otp(s) for s in range(current - 3, current + 4)}
        return next(c for c in (f"{n:06d}" for n in range(1000000)) if c not in right)


async def enable_totp(client: ApiClient) -> tuple[Totp, list[str]]:
    """Enrols and confirms TOTP on a fresh session; the app and the recovery codes."""
    response = await client.post(f"{API}/users/me/mfa/totp")
    assert response.status_code == 200, response.text
    app = Totp(response.json()["secret"])
    confirmed = await client.post(f"{API}/users/me/mfa/totp/confirm", json={"code": app.code()})
    assert confirmed.status_code == 200, confirmed.text
    return app, confirmed.json()["recovery_codes"]


async def totp_user(make_client: Callable[[], ApiClient]) -> tuple[ApiClient, Account, Totp, list[str]]:
    """A new user, logged in, with TOTP on: its client, account, app and recovery codes."""
    client = make_client()
    account = await register(client)
    await login(client, account)
    app, codes = await enable_totp(client)
    return client, account, app, codes


async def password_step(client: ApiClient, account: Account) -> httpx.Response:
    """The password step of a user with a second factor: `mfa_required`, no session."""
    response = await client.post(
        f"{API}/auth/login", json={"username": account.username, "password": account.password}
    )
    assert response.status_code == 200, response.text
    assert response.json()["mfa_required"] is True, response.text
    return response


async def login_with_totp(client: ApiClient, account: Account, app: Totp) -> httpx.Response:
    await password_step(client, account)
    response = await client.post(f"{API}/auth/mfa/verify", json={"method": "totp", "code": app.code()})
    assert response.status_code == 200, response.text
    return response


async def add_passkey(
    client: ApiClient, authenticator: SoftAuthenticator, name: str = "laptop"
) -> httpx.Response:
    """Registers a passkey on a fresh session; the 201 response."""
    options = await client.post(f"{API}/users/me/passkeys/options")
    assert options.status_code == 200, options.text
    credential = authenticator.create(options.json()["publicKey"])
    response = await client.post(f"{API}/users/me/passkeys", json={"name": name, "credential": credential})
    assert response.status_code == 201, response.text
    return response


def soft_authenticator(**kwargs: object) -> SoftAuthenticator:
    return SoftAuthenticator(origin=ORIGIN, **kwargs)  # type: ignore[arg-type]
