"""The login storm's load generator: a process of its own, so that its clients' work
is not done by (and does not slow down) the process that runs wrk and reads the clock.

bench.login_storm starts it as `python -m bench --login-storm-worker <base URL>
<username>...`; it logs in with every username at once, one thread each, until its
stdin is closed."""

import http.client
import json
import sys
import threading
import time
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from bench.common import API, CSRF_COOKIE, PASSWORD, BenchError

STORM_WORKER = "--login-storm-worker"  # argv[1] of the load generator process (see bench.__main__)
LOGIN_TIMEOUT_SECONDS = 30.0


class StormClient:
    """One client of the load generator: a keep-alive connection, one CSRF dance, then
    correct-password logins back to back until told to stop. Runs in its own thread;
    http.client and threads rather than an event loop, as a browser would: each client
    waits for its answer before asking again, whatever the other clients do."""

    def __init__(self, base_url: str, username: str, stop: threading.Event) -> None:
        self.base_url = base_url
        self.username = username
        self.stop = stop
        self.ready = threading.Event()  # set after the first login (or on failure)
        self.logins: list[tuple[float, float]] = []  # time.monotonic() at request and at answer
        self.error: str | None = None

    def run(self) -> None:
        parts = urlsplit(self.base_url)
        host = parts.hostname or "127.0.0.1"
        connection = http.client.HTTPConnection(host, parts.port, timeout=LOGIN_TIMEOUT_SECONDS)
        try:
            connection.request("GET", f"{API}/auth/csrf")
            response = connection.getresponse()
            response.read()
            cookies: SimpleCookie = SimpleCookie()
            for header in response.headers.get_all("set-cookie") or []:
                cookies.load(header)
            if response.status != 200 or CSRF_COOKIE not in cookies:
                raise BenchError(f"GET /auth/csrf: {response.status}, cookies {sorted(cookies)}")
            csrf = cookies[CSRF_COOKIE].value
            # The cookies each login sets are dropped: every login starts from the same
            # anonymous CSRF token and presents no session (so it revokes none).
            headers = {
                "Content-Type": "application/json",
                "X-CSRF-Token": csrf,
                "Cookie": f"{CSRF_COOKIE}={csrf}",
            }
            body = json.dumps({"username": self.username, "password": PASSWORD})
            while True:
                started = time.monotonic()
                connection.request("POST", f"{API}/auth/login", body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                finished = time.monotonic()
                if response.status != 200:
                    raise BenchError(f"POST /auth/login: {response.status}: {answer[:300]!r}")
                self.logins.append((started, finished))
                self.ready.set()
                if self.stop.is_set():
                    return
        except (OSError, http.client.HTTPException, BenchError) as exc:
            self.error = f"{self.username}: {exc!r}"
        finally:
            self.ready.set()
            connection.close()


def storm_worker(base_url: str, usernames: list[str]) -> int:
    """The load generator process. Prints "ready" once every client has logged in once,
    logs in until its stdin is closed, then prints one JSON line: every login's
    (start, end) in time.monotonic() seconds (CLOCK_MONOTONIC, the same clock in every
    process of this machine) and the errors, if any."""
    stop = threading.Event()
    clients = [StormClient(base_url, username, stop) for username in usernames]
    threads = [threading.Thread(target=client.run, daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    for client in clients:
        client.ready.wait()
    if not any(client.error for client in clients):
        print("ready", flush=True)
        sys.stdin.read()  # until the parent closes our stdin
    stop.set()
    for thread in threads:
        thread.join()
    logins = [login for client in clients for login in client.logins]
    errors = [client.error for client in clients if client.error]
    print(json.dumps({"logins": logins, "errors": errors}), flush=True)
    return 0
