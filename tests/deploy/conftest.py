"""The deployment run natively, as compose runs it but without containers: backends
started by docker/entrypoint.sh (production settings, concurrently, as replicas start),
Caddy running the repository's Caddyfile with environment values, and a DNS server of
the tests' own standing in for Docker's, answering the backends' service name with one
loopback address per replica. PostgreSQL and Redis are the machine's: a database of
our own, created here, and a Redis key prefix of our own.

Each client of the edge connects from a loopback address of its own (127.0.0.x), as
users come from addresses of their own: per-IP rate limits then count per test, and
what the backends see as the client address is checkable.
"""

import itertools
import json
import shutil
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL, TEST_DATABASE, drop_database, recreate_database
from tests.fixtures.announce import announce
from tests.fixtures.client import ApiClient
from tests.fixtures.dns import DnsServer, dns_server
from tests.fixtures.oidc import CLIENT_ID, CLIENT_SECRET
from tests.fixtures.server import free_port, stop, wait_until_live

ROOT = Path(__file__).resolve().parents[2]
CADDY = shutil.which("caddy")
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
DATABASE = f"{TEST_DATABASE}_edge"
# What compose's DNS would answer for `backend` with --scale backend=2.
SERVICE_NAME = "backend.test"
REPLICAS = ["127.0.0.2", "127.0.0.3"]
# Names of the cookies with COOKIE_SECURE=true (API.md section 2).
SESSION_COOKIE, CSRF_COOKIE = "__Host-session", "__Host-csrftoken"
# Per client IP and per username. Every client of ours has an IP of its own (see
# above), but Chromium's pages all come from 127.0.0.1: room for the browser tests' logins
# and second steps (each counts, API.md section 9).
LOGIN_RATE_LIMIT = 50

_client_addresses = (f"127.0.0.{n}" for n in itertools.cycle(range(10, 250)))


def next_client_address() -> str:
    return next(_client_addresses)


def requires_caddy() -> None:
    if CADDY is None:
        pytest.skip("caddy is not installed (apt-get install caddy): the edge tests need it")


@dataclass
class Backend:
    """One replica: docker/entrypoint.sh run natively on its own loopback address."""

    address: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(ENTRYPOINT)],
                cwd=self.log_path.parent,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_until_live(self) -> None:
        assert self.process is not None
        wait_until_live(self.process, self.base_url, self.log_path.read_text, timeout=60)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def served(self, method: str, route: str, status: int) -> float:
        """How many such requests this replica has answered (its own /metrics)."""
        text = httpx.get(f"{self.base_url}/metrics", timeout=5).text
        prefix = f'http_requests_total{{method="{method}",route="{route}",status="{status}"}} '
        return sum(float(line.removeprefix(prefix)) for line in text.splitlines() if line.startswith(prefix))


@dataclass
class Edge:
    """Caddy in front of the replicas: what a browser reaches."""

    base_url: str  # https://localhost:<port>
    http_url: str  # the plain-http port, which only redirects
    admin_port: int  # Caddy's admin API (2019 in compose)
    ca_file: Path  # Caddy's internal CA root
    backends: list[Backend]
    dns: DnsServer
    log_path: Path
    # The port the backends expect their OpenID Connect provider "test" on
    # (tests/deploy/test_browser_oidc.py starts it there).
    oidc_port: int = 0
    clients: list[ApiClient] = field(default_factory=list)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self, source: str | None = None, **kwargs: object) -> ApiClient:
        """An ApiClient of the edge over https, trusting Caddy's CA, from a loopback
        address of its own (or `source`)."""
        transport = httpx.AsyncHTTPTransport(
            verify=self.ssl_context(), local_address=source or next_client_address()
        )
        client = ApiClient(
            base_url=self.base_url,
            transport=transport,
            csrf_cookie=CSRF_COOKIE,
            session_cookie=SESSION_COOKIE,
            timeout=15,
            **kwargs,  # type: ignore[arg-type]
        )
        self.clients.append(client)
        return client


def _backend_env(
    database_url: str, address: str, port: int, home: Path, shared: dict[str, str]
) -> dict[str, str]:
    # Only what a container would get (no inherited settings; a working directory
    # without a .env), plus the virtualenv on PATH for the script's python and uvicorn.
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "HOME": str(home),
        "ENVIRONMENT": "production",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "LISTEN_HOST": address,
        "PORT": str(port),
        # Caddy dials the replicas from 127.0.0.1: only its X-Forwarded-For is believed.
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "LOGIN_RATE_LIMIT": f"{LOGIN_RATE_LIMIT}/minute",
        "REGISTER_RATE_LIMIT": "1000/hour",
        "LOG_LEVEL": "warning",
        "PUBLIC_URL": "",
        # Sessions go stale quickly, so that the browser tests can wait one out and see the
        # re-authentication prompt (tests/deploy/test_browser_mfa.py); nothing else here is
        # a sensitive operation (API.md section 9).
        "REAUTH_MAX_AGE_SECONDS": "5",
        **shared,
    }


def _caddy_env(
    edge_ports: tuple[int, int, int], backend_port: int, dns: DnsServer, home: Path
) -> dict[str, str]:
    https_port, http_port, admin_port = edge_ports
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        # Certificates and the internal CA in a directory of our own.
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "SITE_ADDRESS": f"localhost:{https_port}",
        "HTTPS_PORT": str(https_port),
        "HTTP_PORT": str(http_port),
        "CADDY_ADMIN": f"localhost:{admin_port}",
        "BACKEND_HOST": SERVICE_NAME,
        "BACKEND_PORT": str(backend_port),
        # Caddy 2.6 dials a resolver over TCP unless told otherwise; ours speaks UDP.
        "BACKEND_RESOLVERS": f"udp/{dns.address}",
        "SPA_ROOT": str(ROOT / "web"),
        "MAX_BODY_SIZE": "1MB",
    }


def _wait_for_edge(process: subprocess.Popen[bytes], edge: Edge, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"caddy exited with {process.returncode}:\n{edge.log_path.read_text()}")
        if edge.ca_file.exists():
            try:
                response = httpx.get(f"{edge.base_url}/api/v1/health", verify=edge.ssl_context(), timeout=2)
                if response.status_code == 200:
                    return
            except (httpx.TransportError, ssl.SSLError):
                pass
        time.sleep(0.1)
    raise AssertionError(
        f"caddy did not proxy /api/v1/health within {timeout:.0f} s:\n{edge.log_path.read_text()}"
    )


@pytest.fixture(scope="session")
def edge(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Edge]:
    """Two replicas behind Caddy, for the whole run (tests that kill a replica start it again)."""
    requires_caddy()
    import anyio

    database_url = anyio.run(recreate_database, DATABASE)
    home = tmp_path_factory.mktemp("edge")
    ports = (free_port(), free_port(), free_port())
    oidc_port = free_port()
    oidc = {
        "name": "test",
        "issuer": f"http://127.0.0.1:{oidc_port}",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "allow_http": True,
    }
    shared = {
        "REDIS_KEY_PREFIX": f"edge:{uuid.uuid4().hex[:8]}:",
        "SECRET_KEY": "edge-test-secret-key-" + uuid.uuid4().hex,
        # Contacted only when a sign-in starts: no provider needs to run for the other tests.
        "OIDC_PROVIDERS": json.dumps([oidc]),
    }
    backend_port = free_port()
    backends = []
    for index, address in enumerate(REPLICAS):
        replica_home = home / f"backend{index}"
        replica_home.mkdir()
        env = _backend_env(database_url, address, backend_port, replica_home, shared)
        backends.append(Backend(address, backend_port, env, replica_home / "log"))
    caddy_process = None
    try:
        # Together, as `docker compose up --scale backend=2` starts them: both migrate.
        for backend in backends:
            backend.start()
        started = ", ".join(f"pid {b.process.pid} on {b.base_url}" for b in backends if b.process)
        announce(
            pytestconfig,
            f"tests/deploy: started docker/entrypoint.sh twice (migrate, then uvicorn): {started}",
        )
        for backend in backends:
            backend.wait_until_live()
        with dns_server(SERVICE_NAME, REPLICAS) as dns:
            caddy_home = home / "caddy"
            caddy_home.mkdir()
            edge = Edge(
                base_url=f"https://localhost:{ports[0]}",
                http_url=f"http://localhost:{ports[1]}",
                admin_port=ports[2],
                ca_file=caddy_home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt",
                backends=backends,
                dns=dns,
                log_path=caddy_home / "log",
                oidc_port=oidc_port,
            )
            with edge.log_path.open("wb") as log:
                caddy_process = subprocess.Popen(
                    [str(CADDY), "run", "--config", str(ROOT / "Caddyfile"), "--adapter", "caddyfile"],
                    cwd=caddy_home,
                    env=_caddy_env(ports, backend_port, dns, caddy_home),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            announce(
                pytestconfig,
                f"tests/deploy: started caddy (pid {caddy_process.pid}) on {edge.base_url} in front of "
                f"them, and a DNS server answering {SERVICE_NAME} on {dns.address}",
            )
            _wait_for_edge(caddy_process, edge)
            yield edge
    finally:
        announce(pytestconfig, "tests/deploy: stopping caddy and the backends")
        if caddy_process is not None:
            stop(caddy_process)
        for backend in backends:
            if backend.process is not None:
                stop(backend.process)
        anyio.run(drop_database, DATABASE)


@pytest.fixture
async def edge_clients(edge: Edge) -> AsyncIterator[Edge]:
    """The edge, with the clients a test made closed at its end."""
    yield edge
    while edge.clients:
        await edge.clients.pop().aclose()
