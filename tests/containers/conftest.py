"""The image and the compose stack in a real container engine (podman): the stand-in
base images (docker/local-images.sh, cached between runs), the backend image built from
the Dockerfile once per run, and a record of what was made, removed at the end.

Figures (stand-in, build and compose times, the image's size, the replica-stop run)
are collected in FIGURES and printed at the end of the run: timings are reported, never
asserted."""

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.containers.podman import PODMAN, PODMAN_COMPOSE, ROOT, Made, inspect, podman, podman_env

RUN_ID = uuid.uuid4().hex[:8]
# Passed to the build as the optional secret `ca`: the TLS-intercepting proxy's CA is
# in this bundle (a company network's would be too); nothing of it stays in the image.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
FIGURES: dict[str, str] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("tests/containers figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")


def requires_podman() -> None:
    if PODMAN is None:
        pytest.skip("podman is not installed (apt-get install podman runc): the container tests need it")
    if PODMAN_COMPOSE is None:
        pytest.skip("podman-compose is not installed (pip install -r requirements-dev.txt)")


@pytest.fixture(scope="session")
def made() -> Iterator[Made]:
    made = Made()
    started = time.monotonic()
    yield made
    left = made.remove_all()
    FIGURES["tests/containers, first fixture to everything removed"] = f"{time.monotonic() - started:.1f} s"
    assert not left, f"left behind in podman: {left}"


@pytest.fixture(scope="session")
def standins() -> dict[str, str]:
    """PYTHON_IMAGE, CADDY_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE: the stand-ins' names."""
    requires_podman()
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "docker" / "local-images.sh")],
        capture_output=True,
        text=True,
        env=podman_env(),
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    FIGURES["stand-in images (docker/local-images.sh)"] = f"{time.monotonic() - started:.1f} s; " + "; ".join(
        line.removeprefix("local-images: ") for line in result.stderr.splitlines()
    )
    found = dict(line.split("=", 1) for line in result.stdout.split())
    assert set(found) == {"PYTHON_IMAGE", "CADDY_IMAGE", "POSTGRES_IMAGE", "REDIS_IMAGE"}
    return found


@pytest.fixture(scope="session")
def image(standins: dict[str, str], made: Made) -> str:
    """The backend image, built from the Dockerfile on the stand-in Python."""
    name = f"localhost/cookie-session-backend-test:{RUN_ID}"
    made.images.append(name)
    secret = ["--secret", f"id=ca,src={CA_BUNDLE}"] if CA_BUNDLE.is_file() else []
    started = time.monotonic()
    # --layers=false: no intermediate images left behind. The docker format: OCI images
    # have no HEALTHCHECK (podman drops it with a warning).
    podman(
        "build",
        "--layers=false",
        "--format",
        "docker",
        "--build-arg",
        f"PYTHON_IMAGE={standins['PYTHON_IMAGE']}",
        *secret,
        "--tag",
        name,
        "--file",
        str(ROOT / "Dockerfile"),
        str(ROOT),
        timeout=1800,
    )
    size = inspect("image", name)["Size"]
    FIGURES["backend image build (podman build, no cache)"] = f"{time.monotonic() - started:.1f} s"
    FIGURES["backend image size"] = f"{size / 1e6:.0f} MB (base {_size(standins['PYTHON_IMAGE'])})"
    return name


def _size(image: str) -> str:
    return f"{inspect('image', image)['Size'] / 1e6:.0f} MB"


def container_name(prefix: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", f"cstest-{RUN_ID}-{prefix}")
