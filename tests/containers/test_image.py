"""The backend image as built from the Dockerfile: who it runs as, what it may write,
and one container of it against the machine's PostgreSQL and Redis (a database and a
key prefix of our own), through its HEALTHCHECK and a SIGTERM.

That container uses the host's network (`--network host`): the host's PostgreSQL and
Redis listen on 127.0.0.1 only, which a container on a bridge network cannot reach
(its 127.0.0.1 is its own), and rebinding shared services for a test is not ours to do."""

import json
import time
import uuid
from collections.abc import Iterator

import anyio
import asyncpg
import httpx
import pytest

from tests.conftest import REDIS_URL, TEST_DATABASE, drop_database, recreate_database
from tests.containers.conftest import FIGURES, container_name
from tests.containers.podman import Made, healthy, inspect, podman
from tests.fixtures.server import free_port

pytestmark = [pytest.mark.containers, pytest.mark.slow]

DATABASE = f"{TEST_DATABASE}_image"
SUPERUSER_EMAIL = "root-image@example.com"
# compose's stop_grace_period, and what `podman stop --time` gives before SIGKILL.
GRACE_SECONDS = 30

CHECK_FILES = """
import importlib.util, json, os
paths = ["/app", "/app/app", "/app/app/main.py", "/app/alembic", "/opt/venv", "/opt/venv/bin/python",
         "/usr/local/bin/entrypoint.sh"]
try:
    open("/app/app/main.py", "a").close()
    wrote = True
except PermissionError:
    wrote = False
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(),
    "owners": {p: os.stat(p).st_uid for p in paths},
    "writable": [p for p in paths if os.access(p, os.W_OK)],
    "wrote_code": wrote,
    "dev_tools": [m for m in ("pytest", "mypy", "ruff", "playwright") if importlib.util.find_spec(m)],
}))
"""


def test_the_image_runs_as_10001_and_cannot_rewrite_its_code(image: str, made: Made) -> None:
    config = inspect("image", image)["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/usr/local/bin/entrypoint.sh"]

    name = container_name("files")
    made.containers.append(name)
    result = podman("run", "--rm", "--name", name, "--entrypoint", "python", image, "-c", CHECK_FILES)
    found = json.loads(result.stdout)
    assert (found["uid"], found["gid"]) == (10001, 10001)
    assert set(found["owners"].values()) == {0}, found["owners"]
    assert found["writable"] == []
    assert found["wrote_code"] is False
    # requirements.txt only: the build stage's test tools never reach the runtime.
    assert found["dev_tools"] == []


@pytest.fixture
def database() -> Iterator[str]:
    url = anyio.run(recreate_database, DATABASE)
    yield url
    anyio.run(drop_database, DATABASE)


async def _superusers(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [row["email"] for row in await conn.fetch('SELECT email FROM "user" WHERE is_superuser')]
    finally:
        await conn.close()


def test_a_container_serves_passes_its_healthcheck_and_stops_on_sigterm(
    image: str, made: Made, database: str
) -> None:
    name = container_name("serve")
    made.containers.append(name)
    port = free_port()
    env = {
        "ENVIRONMENT": "production",
        "DATABASE_URL": database,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": f"image:{uuid.uuid4().hex[:8]}:",
        "SECRET_KEY": "image-test-secret-key-" + uuid.uuid4().hex,
        "PORT": str(port),
        "LISTEN_HOST": "127.0.0.1",
        "FIRST_SUPERUSER_EMAIL": SUPERUSER_EMAIL,
        "FIRST_SUPERUSER_USERNAME": "rootimage",
        "FIRST_SUPERUSER_PASSWORD": "Image-superuser-pass-" + uuid.uuid4().hex[:12],
        "LOG_LEVEL": "info",
    }
    env_args = [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
    podman("run", "--detach", "--name", name, "--network", "host", *env_args, image)

    deadline = time.monotonic() + 60
    while not healthy(name):
        state = inspect("container", name)["State"]
        assert state["Running"], f"exited {state['ExitCode']}:\n{podman('logs', name).stderr[-4000:]}"
        assert time.monotonic() < deadline, podman("logs", name).stderr[-4000:]
        time.sleep(0.5)
    # The Dockerfile's HEALTHCHECK itself (kept only in the docker image format): the
    # container was given none of its own.
    assert "/healthz" in " ".join(inspect("container", name)["Config"]["Healthcheck"]["Test"])
    assert inspect("container", name)["State"]["Health"]["Status"] == "healthy"
    assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).status_code == 200
    assert SUPERUSER_EMAIL in anyio.run(_superusers, database)

    started = time.monotonic()
    podman("stop", "--time", str(GRACE_SECONDS), name, timeout=GRACE_SECONDS + 30)
    FIGURES["single container: podman stop (SIGTERM) to exit"] = f"{time.monotonic() - started:.2f} s"
    state = inspect("container", name)["State"]
    logs = podman("logs", name).stderr
    # 0, not 137: uvicorn (PID 1 by the entry script's exec) ended on the SIGTERM, no SIGKILL.
    assert state["ExitCode"] == 0, logs[-4000:]
    assert "Finished server process" in logs
    assert "applying migrations" in logs
