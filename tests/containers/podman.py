"""podman (and podman-compose) driven from the tests: commands, the settings this
machine needs, and a record of every object made so that all of it is removed."""

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PODMAN = shutil.which("podman")
# The podman-compose of requirements-dev.txt, next to the venv's python.
PODMAN_COMPOSE = shutil.which("podman-compose", path=str(Path(sys.executable).parent)) or shutil.which(
    "podman-compose"
)
# Where podman's defaults cannot run a container (see the file); an explicit setting wins.
CONTAINERS_CONF = os.environ.get("CONTAINERS_CONF") or str(ROOT / "docker" / "podman" / "containers.conf")


def podman_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": CONTAINERS_CONF, **extra}


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    assert PODMAN is not None
    result = subprocess.run(
        [PODMAN, *args], capture_output=True, text=True, env=podman_env(), timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result


def inspect(kind: str, name: str) -> dict[str, Any]:
    return json.loads(podman(kind, "inspect", name).stdout)[0]


def healthy(container: str) -> bool:
    """Runs the container's own healthcheck once, as podman's timer would (the timers
    need systemd, which these machines do not run)."""
    return podman("healthcheck", "run", container, check=False, timeout=30).returncode == 0


def wait_healthy(containers: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    pending = list(containers)
    while pending:
        pending = [name for name in pending if not healthy(name)]
        if pending and time.monotonic() > deadline:
            logs = "\n".join(
                f"--- {name}\n{podman('logs', name, check=False).stderr[-3000:]}" for name in pending
            )
            raise AssertionError(f"not healthy within {timeout:.0f} s: {pending}\n{logs}")
        if pending:
            time.sleep(1)


@dataclass
class Made:
    """Everything the tests made in podman, removed by `remove_all` (also on failure)."""

    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)

    def remove_all(self) -> list[str]:
        problems = []
        for name in self.containers:
            podman("rm", "--force", "--time", "0", name, check=False)
        for project in self.projects:
            # Whatever compose left (down already ran, unless a test failed before it).
            label = f"label=io.podman.compose.project={project}"
            for container in podman("ps", "-aq", "--filter", label, check=False).stdout.split():
                podman("rm", "--force", "--time", "0", container, check=False)
            for pod in podman("pod", "ps", "-q", "--filter", label, check=False).stdout.split():
                podman("pod", "rm", "--force", pod, check=False)
            volume_label = f"label=com.docker.compose.project={project}"
            for volume in podman("volume", "ls", "-q", "--filter", volume_label, check=False).stdout.split():
                podman("volume", "rm", "--force", volume, check=False)
            for network in podman(
                "network", "ls", "-q", "--filter", volume_label, check=False
            ).stdout.split():
                podman("network", "rm", "--force", network, check=False)
        for image in self.images:
            podman("rmi", "--force", image, check=False)
        # What is left of ours is a leak: say so.
        for project in self.projects:
            label = f"label=com.docker.compose.project={project}"
            for kind in ("volume", "network"):
                left = podman(kind, "ls", "-q", "--filter", label, check=False).stdout.split()
                problems += [f"{kind} {name}" for name in left]
            ps = podman("ps", "-aq", "--filter", f"label=io.podman.compose.project={project}", check=False)
            problems += [f"container {name}" for name in ps.stdout.split()]
        for image in self.images:
            if podman("image", "exists", image, check=False).returncode == 0:
                problems.append(f"image {image}")
        return problems
