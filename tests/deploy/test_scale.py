"""Scale-out: two replicas behind the one Caddy share sessions, rate limits and live
updates (all of it lives in PostgreSQL and Redis), and a replica killed during a run
of reads costs users no failed request (Caddy retries idempotent requests elsewhere
and stops sending to the dead one).

Where a property needs a request on a given replica, the test talks to that replica
directly (as Caddy would, from 127.0.0.1, a trusted proxy), with the cookies a browser
holds; where it is about the balancing itself, it goes through Caddy."""

import asyncio
import json
import time
from collections import Counter

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.deploy.conftest import CSRF_COOKIE, LOGIN_RATE_LIMIT, SESSION_COOKIE, Backend, Edge
from tests.fixtures.client import API, ApiClient, login, register, unique
from tests.fixtures.reads import read_until

pytestmark = pytest.mark.slow

ME = ("GET", f"{API}/users/me", 200)


def browser_cookies(client: ApiClient) -> dict[str, str]:
    """The session and CSRF cookies an edge client holds, as headers for a replica
    (plain http: a cookie jar would keep Secure cookies to itself)."""
    session, csrf = client.cookies.get(SESSION_COOKIE), client.cookies.get(CSRF_COOKIE)
    assert session, "not logged in"
    assert csrf
    return {"Cookie": f"{SESSION_COOKIE}={session}; {CSRF_COOKIE}={csrf}", "X-CSRF-Token": csrf}


async def test_a_session_works_on_every_replica(edge_clients: Edge) -> None:
    client = edge_clients.client()
    account = await register(client)
    await login(client, account)
    headers = browser_cookies(client)
    for backend in edge_clients.backends:
        async with httpx.AsyncClient(base_url=backend.base_url) as direct:
            response = await direct.get(f"{API}/users/me", headers=headers)
        assert response.status_code == 200, backend.address
        assert response.json()["id"] == account.id

    # And Caddy spreads one user's requests over both.
    before = [backend.served(*ME) for backend in edge_clients.backends]
    for _ in range(30):
        assert (await client.get(f"{API}/users/me")).status_code == 200
    after = [backend.served(*ME) for backend in edge_clients.backends]
    assert sum(after) - sum(before) >= 30
    assert all(now > then for now, then in zip(after, before, strict=True)), (before, after)

    # Logging out on one replica ends the session on the other at once.
    async with httpx.AsyncClient(base_url=edge_clients.backends[0].base_url) as first:
        assert (await first.post(f"{API}/auth/logout", headers=headers)).status_code == 200
    async with httpx.AsyncClient(base_url=edge_clients.backends[1].base_url) as second:
        assert (await second.get(f"{API}/users/me", headers=headers)).status_code == 401


async def test_login_rate_limit_is_counted_across_replicas(edge_clients: Edge) -> None:
    username = unique()
    # One client address for every attempt, believed because the peer is the proxy.
    forwarded = {"X-Forwarded-For": "192.0.2.77"}
    statuses = []
    clients = [httpx.AsyncClient(base_url=backend.base_url) for backend in edge_clients.backends]
    try:
        for attempt in range(LOGIN_RATE_LIMIT + 2):
            direct = clients[attempt % 2]  # alternate: neither replica sees them all
            token = (await direct.get(f"{API}/auth/csrf")).json()["csrf_token"]
            response = await direct.post(
                f"{API}/auth/login",
                json={"username": username, "password": "not-the-password-1"},
                headers={**forwarded, "Cookie": f"{CSRF_COOKIE}={token}", "X-CSRF-Token": token},
            )
            statuses.append(response.status_code)
    finally:
        for direct in clients:
            await direct.aclose()
    assert statuses == [401] * LOGIN_RATE_LIMIT + [429, 429]


async def test_a_change_on_one_replica_reaches_a_socket_on_the_other(edge_clients: Edge) -> None:
    client = edge_clients.client()
    account = await register(client)
    await login(client, account)
    headers = browser_cookies(client)
    watcher, writer = edge_clients.backends
    ws_url = watcher.base_url.replace("http://", "ws://") + f"{API}/ws"
    async with connect(
        ws_url,
        additional_headers={"Cookie": headers["Cookie"], "Origin": watcher.base_url},
        open_timeout=10,
    ) as ws:
        title = unique("scale-")
        async with httpx.AsyncClient(base_url=writer.base_url) as direct:
            created = await direct.post(
                f"{API}/items", json={"title": title, "is_private": True}, headers=headers
            )
        assert created.status_code == 201, created.text
        async with asyncio.timeout(5):
            while (message := json.loads(await ws.recv()))["type"] == "ping":
                pass
    assert message["type"] == "item.created"
    assert message["item"]["title"] == title


async def test_killing_a_replica_during_reads_fails_no_request(edge_clients: Edge) -> None:
    readers = []
    for _ in range(4):
        client = edge_clients.client()
        await login(client, await register(client))
        readers.append(client)
    victim: Backend = edge_clients.backends[1]
    served_before = victim.served(*ME)

    outcomes: Counter[str] = Counter()
    started = time.monotonic()
    tasks = [asyncio.create_task(read_until(client, started + 8.0, outcomes)) for client in readers]
    try:
        await asyncio.sleep(2.0)
        assert victim.served(*ME) > served_before, "the victim served nothing before the kill"
        victim.kill()
        killed_at = sum(outcomes.values())
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        if victim.process is not None and victim.process.poll() is not None:
            victim.start()  # for the tests after this one
            victim.wait_until_live()
    assert set(outcomes) == {"200"}, outcomes
    # Reads went on after the kill, on the replica left.
    assert outcomes["200"] > killed_at + 20, (killed_at, outcomes)


async def test_with_every_replica_down_the_api_answers_503_in_its_envelope(edge_clients: Edge) -> None:
    client = edge_clients.client()
    try:
        for backend in edge_clients.backends:
            backend.kill()
        started = time.monotonic()
        response = await client.get(f"{API}/items")
        waited = time.monotonic() - started
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "service_unavailable"
        assert response.headers["retry-after"] == "5"
        assert response.headers["x-content-type-options"] == "nosniff"
        # Caddy kept trying for its lb_try_duration (5 s), not for ever.
        assert waited < 8
        # The SPA is still served, and can say so.
        assert (await client.get("/")).status_code == 200
    finally:
        for backend in edge_clients.backends:
            if backend.process is not None and backend.process.poll() is not None:
                backend.start()
        for backend in edge_clients.backends:
            backend.wait_until_live()
    # Back without touching Caddy.
    assert (await client.get(f"{API}/items")).status_code == 200
