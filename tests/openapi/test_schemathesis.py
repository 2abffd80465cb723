"""schemathesis over the whole OpenAPI document, against a live server (tests/openapi/conftest.py).

Twice: as an anonymous caller (with the CSRF token a browser holds before login) and as a
logged-in user (session cookie, and the CSRF token bound to it). Credentials are given per
security scheme of the document (`[auth.openapi.<scheme>]`), so schemathesis sends them
exactly where the document says they are needed (a wrong `security` shows up in the output
as operations that only ever answer 401/403: a warning, which tests/openapi/test_document.py
backs with assertions).

Any failure fails the test: a server error (500), a status the operation does not document,
or a response (success or error) that breaks its declared schema. The seed is in the output:
`--seed` reproduces a run.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fixtures.client import API
from tests.openapi.conftest import CSRF_COOKIE, SESSION_COOKIE, Credentials, LiveServer

CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"
# Bounds the work: each run takes seconds, not minutes (every phase: examples, coverage,
# fuzzing, stateful). SCHEMATHESIS_MAX_EXAMPLES=300 searches harder (a few minutes a run).
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "20"))
RUN_TIMEOUT_SECONDS = 60 + 3 * MAX_EXAMPLES
# Generous: on a busy machine (2 cores, the suite's other servers) an Argon2 login can wait
# seconds for a hashing slot, and a timed-out request is an error that fails the run.
REQUEST_TIMEOUT_SECONDS = 30
# One worker: with several, CPython 3.11's ast module fails in hypothesis' threads
# ("AST constructor recursion depth mismatch"), an error of the tool, not of the API.
WORKERS = 1
# Operations that end the logged-in user's session: run before the others, every later
# request would be anonymous (401), and the run would no longer test a logged-in user.
# The anonymous run covers them; tests/auth and tests/users test what they do.
ENDS_THE_SESSION = (
    "POST /api/v1/auth/logout",
    "POST /api/v1/auth/logout-all",
    "DELETE /api/v1/users/me/sessions/{session_id}",
    "DELETE /api/v1/users/me",  # the account itself (the session is fresh: it just logged in)
)


def write_config(directory: Path, credentials: dict[str, str]) -> Path:
    lines = [
        "[cache]",
        "enabled = false",  # nothing kept between runs: each run is on its own database
        "[generation]",
        'database = "none"',
        "[auth]",
        # schemathesis would otherwise register and log in a user of its own (it finds
        # register and login in the document): the credentials are the ones given here.
        "auto-signup = false",
    ]
    for scheme, value in credentials.items():
        lines += [f"[auth.openapi.{scheme}]", f"api_key = {json.dumps(value)}"]
    path = directory / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def schemathesis(
    server: LiveServer, directory: Path, credentials: dict[str, str], *, exclude: tuple[str, ...] = ()
) -> str:
    config = write_config(directory, credentials)
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
        "run", f"{server.base_url}/openapi.json",
        "--checks", CHECKS,
        "--max-examples", str(MAX_EXAMPLES),
        "--workers", str(WORKERS),
        "--request-timeout", str(REQUEST_TIMEOUT_SECONDS),
    ]  # fmt: skip
    for name in exclude:
        command += ["--exclude-name", name]
    done = subprocess.run(
        command, cwd=directory, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, (
        f"schemathesis reported failures (exit {done.returncode}):\n{output}\n"
        f"--- the server's log (tail) ---\n{server.log_tail()}"
    )
    return output


def selected(output: str) -> tuple[int, int]:
    match = re.search(r"Selected: (\d+)/(\d+)", output)
    assert match, output
    return int(match[1]), int(match[2])


def test_anonymous_caller(live_server: LiveServer, anonymous_csrf_token: str, tmp_path: Path):
    output = schemathesis(
        live_server, tmp_path, {"csrfToken": anonymous_csrf_token, "csrfCookie": anonymous_csrf_token}
    )
    chosen, total = selected(output)
    assert chosen == total  # the whole document


@pytest.mark.parametrize("name", ENDS_THE_SESSION)
def test_the_excluded_operations_exist(live_server: LiveServer, name: str):
    # An exclusion that matches nothing would silently widen the logged-in run's hole.
    method, path = name.split(" ")
    document = httpx.get(f"{live_server.base_url}/openapi.json", timeout=10).json()
    assert method.lower() in document["paths"][path]


def test_logged_in_user(live_server: LiveServer, logged_in: Credentials, tmp_path: Path):
    output = schemathesis(
        live_server,
        tmp_path,
        {
            "csrfToken": logged_in.csrf_token,
            "csrfCookie": logged_in.csrf_token,
            "sessionCookie": logged_in.session,
        },
        exclude=ENDS_THE_SESSION,
    )
    chosen, total = selected(output)
    assert chosen == total - len(ENDS_THE_SESSION)
    # Still logged in afterwards: the run was a logged-in user's from start to end.
    me = httpx.get(
        f"{live_server.base_url}{API}/users/me",
        cookies={SESSION_COOKIE: logged_in.session, CSRF_COOKIE: logged_in.csrf_token},
        timeout=10,
    )
    assert me.status_code == 200, me.text
