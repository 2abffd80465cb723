"""docker-compose.yml brought up by podman-compose: a project directory of its own (the
compose file, a .env as an operator writes it, the Caddyfile and web/ linked from the
clone), the stand-in images through compose's image variables, Caddy's ports published
on 127.0.0.1 only, and the edge network on a subnet of its own.

podman 4.3 (Debian bookworm's) runs healthchecks only when asked (its timers need
systemd), and podman-compose ignores `condition: service_healthy` before podman 4.6: it
starts the services in depends_on order without waiting. So `up` here waits for each
service's own healthcheck (`podman healthcheck run`), in that order, itself."""

import random
import shutil
import ssl
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.containers.podman import PODMAN_COMPOSE, ROOT, inspect, podman, podman_env, wait_healthy
from tests.fixtures.client import ApiClient
from tests.fixtures.server import free_port

SESSION_COOKIE, CSRF_COOKIE = "__Host-session", "__Host-csrftoken"
CA_IN_VOLUME = "/data/caddy/pki/authorities/local/root.crt"


@dataclass
class Stack:
    project: str
    directory: Path
    images: dict[str, str]
    subnet: str
    https_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    clients: list[ApiClient] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def ca_file(self) -> Path:
        return self.directory / "caddy-root.crt"

    def write_files(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "docker-compose.yml", self.directory / "docker-compose.yml")
        for name in ("Caddyfile", "web"):
            (self.directory / name).symlink_to(ROOT / name)
        password = uuid.uuid4().hex
        (self.directory / ".env").write_text(
            "\n".join(
                [
                    "ENVIRONMENT=production",
                    f"SECRET_KEY=compose-test-secret-key-{uuid.uuid4().hex}",
                    f"POSTGRES_PASSWORD={password}",
                    f"DATABASE_URL=postgresql+asyncpg://app:{password}@db:5432/app",
                    "REDIS_URL=redis://redis:6379/0",
                    "SITE_ADDRESS=localhost",
                    f"PROXY_SUBNET={self.subnet}",
                    # Every client of the tests comes from the host: room for their logins.
                    "LOGIN_RATE_LIMIT=1000/minute",
                    "REGISTER_RATE_LIMIT=1000/hour",
                    "LOG_LEVEL=info",
                    "",
                ]
            )
        )

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        assert PODMAN_COMPOSE is not None
        env = podman_env(
            **self.images,
            CADDY_HTTP_PUBLISH=f"127.0.0.1:{self.http_port}",
            CADDY_HTTPS_PUBLISH=f"127.0.0.1:{self.https_port}",
            # aardvark-dns, podman's DNS, answers on the network's gateway (Docker's on
            # 127.0.0.11); Caddy 2.6 would ask it over TCP unless told udp.
            BACKEND_RESOLVERS=f"udp/{self.subnet.rsplit('.', 1)[0]}.1:53",
        )
        result = subprocess.run(
            [PODMAN_COMPOSE, "--project-name", self.project, "--file", "docker-compose.yml", *args],
            cwd=self.directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"podman-compose {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}"
            )
        return result

    def containers(self, service: str | None = None) -> list[str]:
        filters = ["--filter", f"label=io.podman.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=io.podman.compose.service={service}"]
        return sorted(podman("ps", "-a", *filters, "--format", "{{.Names}}").stdout.split())

    def container(self, service: str) -> str:
        (name,) = self.containers(service)
        return name

    def service_of(self, container: str) -> str:
        return inspect("container", container)["Config"]["Labels"]["io.podman.compose.service"]

    def up(self, replicas: int = 2) -> float:
        """`up -d --scale backend=N`, then every healthcheck in depends_on order, then
        Caddy proxying the API: the seconds it all took."""
        started = time.monotonic()
        self.compose("up", "-d", "--scale", f"backend={replicas}")
        for services in (["db", "redis"], ["backend"], ["caddy"]):
            wait_healthy([name for service in services for name in self.containers(service)])
        self._fetch_ca()
        self._wait_for_edge()
        return time.monotonic() - started

    def down(self, *args: str) -> str:
        """`down`: podman-compose removes the containers of its model, which knows one
        replica per service; --remove-orphans removes the other replicas too."""
        result = self.compose("down", "--remove-orphans", *args)
        return result.stdout + result.stderr

    def _fetch_ca(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            result = podman("exec", self.container("caddy"), "cat", CA_IN_VOLUME, check=False)
            if result.returncode == 0:
                self.ca_file.write_text(result.stdout)
                return
            assert time.monotonic() < deadline, result.stderr
            time.sleep(0.5)

    def _wait_for_edge(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = httpx.get(f"{self.base_url}/api/v1/health", verify=self.ssl_context(), timeout=5)
                if last.status_code == 200:
                    return
            except (httpx.TransportError, ssl.SSLError) as exc:
                last = exc
            time.sleep(0.5)
        logs = podman("logs", "--tail", "30", self.container("caddy"), check=False)
        raise AssertionError(f"the API is not reachable through Caddy: {last!r}\n{logs.stdout}{logs.stderr}")

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self) -> ApiClient:
        """A client of the edge over https, trusting Caddy's CA, over IPv4 (Caddy's
        ports are published on 127.0.0.1)."""
        client = ApiClient(
            base_url=self.base_url,
            transport=httpx.AsyncHTTPTransport(verify=self.ssl_context(), local_address="127.0.0.1"),
            csrf_cookie=CSRF_COOKIE,
            session_cookie=SESSION_COOKIE,
            timeout=15,
        )
        self.clients.append(client)
        return client

    def backend_metric(self, container: str, method: str, route: str, status: int) -> float:
        """How many such requests one replica answered (its /metrics, read inside it:
        the app's port is published nowhere)."""
        script = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/metrics').read().decode())"
        text = podman("exec", container, "python", "-c", script).stdout
        prefix = f'http_requests_total{{method="{method}",route="{route}",status="{status}"}} '
        return sum(float(line.removeprefix(prefix)) for line in text.splitlines() if line.startswith(prefix))


def random_subnet() -> str:
    # Away from compose's default (172.30.0.0/24) and podman's own (10.88.0.0/16 and up).
    return f"172.29.{random.randint(0, 255)}.0/24"
