"""Sign-in with OpenID Connect against a real provider (tests/fixtures/oidc.py): one for the
run, one more that the fault tests stop and freeze, a port nobody listens on (a provider
that is down) and a socket that never answers (one that hangs). The app in-process knows
them all; its clients reach the providers over real loopback sockets and the app through
ASGI, with one cookie jar for both, as a browser has."""

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.auth.cookies import COOKIES
from app.main import create_app
from app.state import state_of
from tests.conftest import make_settings, serving
from tests.fixtures.client import ApiClient
from tests.fixtures.oidc import CLIENT_ID, CLIENT_SECRET, ProviderProcess, SilentSocket
from tests.fixtures.server import free_port

BASE_URL = "https://testserver"
NAMES = ("test", "fault", "down", "slow")
STALE_AFTER_SECONDS = 1


def callback_uris() -> list[str]:
    return [f"{BASE_URL}/api/v1/auth/oidc/{name}/callback" for name in NAMES]


@pytest.fixture(scope="session")
def oidc_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("oidc")


@pytest.fixture(scope="session")
def provider(oidc_logs: Path) -> Iterator[ProviderProcess]:
    """The provider of the run."""
    running = ProviderProcess(callback_uris(), oidc_logs / "provider.log")
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def fault_provider(oidc_logs: Path) -> Iterator[ProviderProcess]:
    """A provider of the fault tests' own: they stop it, freeze it and start it again."""
    running = ProviderProcess(callback_uris(), oidc_logs / "fault-provider.log")
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def silent() -> Iterator[SilentSocket]:
    hanging = SilentSocket()
    yield hanging
    hanging.close()


def providers_setting(issuers: dict[str, str]) -> list[dict[str, object]]:
    return [
        {
            "name": name,
            "issuer": issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "allow_http": True,  # loopback only (app/config.py)
        }
        for name, issuer in issuers.items()
    ]


@pytest.fixture(scope="session")
def issuers(
    provider: ProviderProcess, fault_provider: ProviderProcess, silent: SilentSocket
) -> dict[str, str]:
    return {
        "test": provider.issuer,
        "fault": fault_provider.issuer,
        "down": f"http://127.0.0.1:{free_port()}",
        "slow": silent.issuer,
    }


@pytest.fixture(scope="session")
async def oidc_app(database_url: str, redis_prefix: str, issuers: dict[str, str]) -> AsyncIterator[FastAPI]:
    settings = make_settings(database_url, redis_prefix, oidc_providers=providers_setting(issuers))
    async with serving(create_app(settings)) as app:
        yield app


@pytest.fixture(scope="session")
async def stale_oidc_app(
    database_url: str, redis_prefix: str, issuers: dict[str, str]
) -> AsyncIterator[FastAPI]:
    """Sessions stop being fresh STALE_AFTER_SECONDS after a factor."""
    settings = make_settings(
        database_url,
        redis_prefix,
        oidc_providers=providers_setting(issuers),
        reauth_max_age_seconds=STALE_AFTER_SECONDS,
    )
    async with serving(create_app(settings)) as app:
        yield app


Browser = Callable[[], ApiClient]


async def _browsers(app: FastAPI) -> AsyncIterator[Browser]:
    made: list[ApiClient] = []
    cookies = state_of(app)[COOKIES]

    def make() -> ApiClient:
        client = ApiClient(
            transport=httpx.ASGITransport(app=app),
            # The providers over real sockets; everything else (our app) in-process.
            mounts={"http://127.0.0.1": httpx.AsyncHTTPTransport()},
            base_url=BASE_URL,
            csrf_cookie=cookies.csrf,
            session_cookie=cookies.session,
            timeout=10,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def browser(oidc_app: FastAPI) -> AsyncIterator[Browser]:
    """Browsers of the app: each its own cookie jar for the app and the providers."""
    async for make in _browsers(oidc_app):
        yield make


@pytest.fixture
async def stale_browser(stale_oidc_app: FastAPI) -> AsyncIterator[Browser]:
    async for make in _browsers(stale_oidc_app):
        yield make
