"""End to end through a real Caddy (Debian's) running the repository's Caddyfile: TLS,
the security headers, what is and is not routed, the SPA's fallback, the body limit,
the API and its WebSocket over https, and the client address the backends believe."""

import asyncio
import json

import httpx
import pytest
import yaml
from websockets.asyncio.client import connect

from tests.deploy.conftest import CSRF_COOKIE, LOGIN_RATE_LIMIT, ROOT, SESSION_COOKIE, Edge
from tests.fixtures.client import API, login, register, unique

pytestmark = pytest.mark.slow


def header_names(response: httpx.Response) -> set[str]:
    return {name.lower() for name in response.headers}


async def test_security_headers_on_the_spa_and_the_api(edge_clients: Edge) -> None:
    client = edge_clients.client()
    for path in ("/", f"{API}/health", f"{API}/items"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.http_version in ("HTTP/1.1", "HTTP/2")
        headers = response.headers
        assert headers["strict-transport-security"].startswith("max-age=31536000"), path
        csp = headers["content-security-policy"]
        for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"):
            assert directive in csp, path
        assert "unsafe-inline" not in csp, path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "strict-origin-when-cross-origin", path
        permissions = headers["permissions-policy"]
        for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
            assert f"{feature}=()" in permissions, path
        for feature in ("publickey-credentials-get", "publickey-credentials-create"):
            assert f"{feature}=(self)" in permissions, path
        assert headers["cross-origin-opener-policy"] == "same-origin", path
        assert headers["cross-origin-resource-policy"] == "same-origin", path
        # Neither Caddy's nor uvicorn's name and version.
        assert "server" not in header_names(response), path


async def test_tls_is_caddys_own_for_localhost(edge_clients: Edge) -> None:
    host, port = edge_clients.base_url.removeprefix("https://").split(":")
    context = edge_clients.ssl_context()
    reader, writer = await asyncio.open_connection(host, int(port), ssl=context, server_hostname=host)
    try:
        certificate = writer.get_extra_info("peercert")
    finally:
        writer.close()
        await writer.wait_closed()
    issuer = {key: value for pair in certificate["issuer"] for key, value in pair}
    assert "Caddy Local Authority" in issuer["commonName"]
    assert ("DNS", "localhost") in certificate["subjectAltName"]


async def test_the_compose_healthcheck_of_caddy_answers(edge_clients: Edge) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["caddy"]["healthcheck"]["test"]
    url = next(part for part in command if part.startswith("http://"))
    assert ":2019/" in url
    # The same request, to the admin port this Caddy was given instead of 2019.
    response = httpx.get(url.replace(":2019/", f":{edge_clients.admin_port}/"), timeout=5)
    assert response.status_code == 200


async def test_plain_http_redirects_to_https(edge_clients: Edge) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{edge_clients.http_url}/login?next=/items")
    assert response.status_code in (301, 308)
    assert response.headers["location"].startswith("https://localhost")
    assert response.headers["location"].endswith("/login?next=/items")


async def test_internal_routes_are_not_routed(edge_clients: Edge) -> None:
    client = edge_clients.client()
    for path in (
        "/metrics",
        "/docs",
        "/redoc",
        "/openapi.json",
        "/docs/oauth2-redirect",
        "/docs/static/swagger-ui-bundle.js",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "http_requests_total" not in response.text
    # They exist on the replica itself, where an operator scrapes them.
    backend = edge_clients.backends[0]
    assert httpx.get(f"{backend.base_url}/metrics").status_code == 200


async def test_spa_files_and_client_side_routes(edge_clients: Edge) -> None:
    client = edge_clients.client()
    index = await client.get("/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert '<script src="/app.js"' in index.text or "app.js" in index.text
    script = await client.get("/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    # A route of the SPA's own (the reset link's) gets index.html, not a 404.
    deep = await client.get("/reset-password")
    assert deep.status_code == 200
    assert deep.text == index.text
    # An unknown API path is the API's 404 in its envelope, not the SPA's page.
    missing = await client.get(f"{API}/no-such-thing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_oversized_bodies_are_refused_at_the_edge(edge_clients: Edge) -> None:
    client = edge_clients.client()
    account = await register(client)
    await login(client, account)
    before = (await client.get(f"{API}/items", params={"q": account.username})).json()["total"]
    body = json.dumps({"title": "big", "description": "x" * (2 * 1024 * 1024)})
    response = await client.post(f"{API}/items", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert response.headers["x-content-type-options"] == "nosniff"
    after = (await client.get(f"{API}/items", params={"q": account.username})).json()["total"]
    assert after == before


async def test_session_over_https_with_secure_prefixed_cookies(edge_clients: Edge) -> None:
    client = edge_clients.client()
    account = await register(client)
    response = await login(client, account)
    set_cookies = response.headers.get_list("set-cookie")
    session = next(value for value in set_cookies if value.startswith(f"{SESSION_COOKIE}="))
    attributes = {part.strip().split("=")[0] for part in session.split(";")[1:]}
    assert {"Secure", "HttpOnly", "Path"} <= attributes
    assert "Domain" not in attributes
    assert any(value.startswith(f"{CSRF_COOKIE}=") for value in set_cookies)
    assert any(value.startswith("__Secure-refresh=") for value in set_cookies)
    me = await client.get(f"{API}/users/me")
    assert me.status_code == 200
    assert me.json()["username"] == account.username
    refreshed = await client.post(f"{API}/auth/refresh")
    assert refreshed.status_code == 200, refreshed.text
    assert (await client.post(f"{API}/auth/logout")).status_code == 200
    assert (await client.get(f"{API}/users/me")).status_code == 401


async def test_backends_believe_caddy_not_the_client_about_the_client_address(
    edge_clients: Edge,
) -> None:
    # The client says it is 203.0.113.9; Caddy (not a trusted proxy of its own
    # clients) replaces that with the address it saw, which the backends believe.
    client = edge_clients.client(source="127.0.0.201")
    account = await register(client)
    response = await client.post(
        f"{API}/auth/login",
        json={"username": account.username, "password": account.password},
        headers={"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"},
    )
    assert response.status_code == 200
    sessions = (await client.get(f"{API}/users/me/sessions")).json()
    assert [entry["ip"] for entry in sessions] == ["127.0.0.201"]


async def test_login_limit_cannot_be_dodged_with_a_forged_forwarded_header(edge_clients: Edge) -> None:
    client = edge_clients.client()
    statuses = []
    for attempt in range(LOGIN_RATE_LIMIT + 2):
        response = await client.post(
            f"{API}/auth/login",
            # A different name each time: only the per-IP limit applies.
            json={"username": unique(), "password": "wrong-password-1"},
            headers={"X-Forwarded-For": f"198.51.100.{attempt}"},
        )
        statuses.append(response.status_code)
    assert statuses == [401] * LOGIN_RATE_LIMIT + [429, 429]


async def test_websocket_through_the_edge(edge_clients: Edge) -> None:
    client = edge_clients.client()
    account = await register(client)
    await login(client, account)
    ws_url = edge_clients.base_url.replace("https://", "wss://") + f"{API}/ws"
    cookie = f"{SESSION_COOKIE}={client.session_token}"
    async with connect(
        ws_url,
        ssl=edge_clients.ssl_context(),
        additional_headers={"Cookie": cookie, "Origin": edge_clients.base_url},
        open_timeout=10,
    ) as ws:
        title = unique("edge-item-")
        created = await client.post(f"{API}/items", json={"title": title})
        assert created.status_code == 201
        async with asyncio.timeout(5):
            while (message := json.loads(await ws.recv()))["type"] == "ping":
                pass
        assert message["type"] == "item.created"
        assert message["item"]["title"] == title


async def test_the_access_log_ties_to_the_backend_and_holds_no_secret(edge_clients: Edge) -> None:
    client = edge_clients.client()
    account = await register(client)
    login_response = await login(client, account)
    # A POST carries the CSRF token as a header too.
    assert (await client.post(f"{API}/items", json={"title": unique("logged-")})).status_code == 201
    me = await client.get(f"{API}/users/me")
    request_id = me.headers["x-request-id"]
    secrets = [
        client.session_token,
        client.cookies.get(CSRF_COOKIE),
        client.cookies.get("__Secure-refresh"),
        account.password,
    ]
    line, log = await access_log_line(edge_clients, request_id)
    assert line["request"]["uri"] == f"{API}/users/me"
    assert line["status"] == 200
    for secret in secrets:
        assert secret
        assert secret not in log
    assert login_response.status_code == 200


async def test_oversized_request_headers_are_refused_at_the_edge(edge_clients: Edge) -> None:
    async with httpx.AsyncClient(verify=edge_clients.ssl_context(), timeout=10) as client:
        started = asyncio.get_running_loop().time()
        response = await client.get(
            f"{edge_clients.base_url}{API}/health", headers={"Cookie": "a=" + "x" * 48_000}
        )
        assert response.status_code == 431
        assert asyncio.get_running_loop().time() - started < 5
        # The edge (and the API behind it) goes on answering.
        for path in ("/healthz", f"{API}/health"):
            assert (await client.get(f"{edge_clients.base_url}{path}")).status_code == 200, path


async def test_plain_http_redirect_ignores_the_host_header(edge_clients: Edge) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{edge_clients.http_url}/login", headers={"Host": "evil.example"})
    assert response.status_code in (301, 308)
    location = response.headers["location"]
    assert "evil.example" not in location
    assert location == f"{edge_clients.base_url}/login"
    assert "server" not in header_names(response)


async def test_the_access_log_keeps_no_query_string(edge_clients: Edge) -> None:
    client = edge_clients.client()
    secret = unique("secretword")
    response = await client.get(
        f"{API}/health",
        params={"q": secret},
        headers={"Referer": f"{edge_clients.base_url}/items?q={secret}"},
    )
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    line, log = await access_log_line(edge_clients, request_id)
    assert line["request"]["uri"] == f"{API}/health?REDACTED"
    assert secret not in log


async def access_log_line(edge_clients, request_id: str) -> tuple[dict, str]:
    """Caddy's access-log entry of this request (it is written shortly after the answer),
    and the whole log."""
    deadline = asyncio.get_running_loop().time() + 5
    while request_id not in edge_clients.log_path.read_text():
        assert asyncio.get_running_loop().time() < deadline, "the request never reached the access log"
        await asyncio.sleep(0.1)
    log = edge_clients.log_path.read_text()
    return next(json.loads(entry) for entry in log.splitlines() if request_id in entry), log
