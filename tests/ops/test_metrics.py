"""GET /metrics (API.md section 8): Prometheus text, request counts and latency by route
template, login outcomes, the WebSocket gauge; a registry per app."""

import uuid

from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import METRICS
from app.state import state_of
from tests.fixtures.client import API, ApiClient, login, register, unique
from tests.ops.conftest import client_at

ITEM = f"{API}/items/{{item_id}}"


async def scrape(client: ApiClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum over every series of `name` that has these labels (whatever its others)."""
    wanted = set(labels.items())
    return sum(v for (sample, series), v in samples.items() if sample == name and wanted <= series)


async def test_requests_are_counted_and_timed_by_route_template_not_raw_path(client):
    before = await scrape(client)
    for item_id in ("123", "456"):  # whether they exist does not matter
        await client.get(f"{API}/items/{item_id}")
    after = await scrape(client)
    for name in ("http_requests_total", "http_request_duration_seconds_count"):
        assert (
            total(after, name, method="GET", route=ITEM) - total(before, name, method="GET", route=ITEM) == 2
        )
    assert value(after, "http_request_duration_seconds_bucket", method="GET", route=ITEM, le="+Inf") >= 2
    routes = {dict(labels).get("route") for _, labels in after}
    assert ITEM in routes
    assert not [route for route in routes if route and ("123" in route or "456" in route)]


async def test_an_unknown_path_is_counted_as_unmatched(client):
    path = f"/no/such/{uuid.uuid4().hex}"
    assert (await client.get(path)).status_code == 404
    response = await client.get("/metrics")
    assert path not in response.text
    samples = await scrape(client)
    assert value(samples, "http_requests_total", method="GET", route="<unmatched>", status="404") >= 1


async def test_login_outcomes_are_counted(client, make_client):
    before = await scrape(client)
    account = await register(make_client())
    await login(make_client(), account)
    response = await make_client().post(
        f"{API}/auth/login", json={"username": unique(), "password": "wrong-pw"}
    )
    assert response.status_code == 401
    after = await scrape(client)
    for outcome in ("success", "failure"):
        moved = value(after, "auth_logins_total", outcome=outcome) - value(
            before, "auth_logins_total", outcome=outcome
        )
        assert moved == 1, outcome
    assert value(after, "auth_logins_total", outcome="inactive") >= 0  # present before any
    assert ("auth_logins_total", frozenset({("outcome", "rate_limited")})) in after


async def test_a_rate_limited_login_is_counted(strict_app: FastAPI):
    async with client_at(strict_app, "198.51.100.90") as client:
        before = await scrape(client)
        for _ in range(3):
            await client.post(f"{API}/auth/login", json={"username": unique(), "password": "wrong-pw"})
        after = await scrape(client)
    assert (
        value(after, "auth_logins_total", outcome="rate_limited")
        - value(before, "auth_logins_total", outcome="rate_limited")
        == 1
    )
    assert (
        value(after, "auth_logins_total", outcome="failure")
        - value(before, "auth_logins_total", outcome="failure")
        == 2
    )


async def test_the_websocket_gauge_is_there_at_zero(client):
    samples = await scrape(client)
    assert ("websocket_connections_active", frozenset()) in samples
    assert value(samples, "websocket_connections_active") == 0


async def test_metrics_is_not_in_the_openapi_schema(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/metrics" not in paths
    assert ITEM in paths  # the template we label by is the one the schema documents


async def test_each_app_has_a_registry_of_its_own(app: FastAPI, strict_app: FastAPI, client):
    assert state_of(app)[METRICS].registry is not state_of(strict_app)[METRICS].registry
    async with client_at(strict_app, "198.51.100.91") as other:
        before = value(
            await scrape(other), "http_requests_total", method="GET", route="/healthz", status="200"
        )
        await client.get("/healthz")
        after = value(
            await scrape(other), "http_requests_total", method="GET", route="/healthz", status="200"
        )
    assert after == before


async def test_redis_memory_is_read_at_each_scrape(client, redis):
    # With noeviction a full Redis refuses logins: operators alert on used against max.
    used = value(await scrape(client), "redis_memory_used_bytes")
    assert used > 0
    info = await redis.info("memory")
    assert value(await scrape(client), "redis_memory_max_bytes") == float(info["maxmemory"])
    assert abs(used - info["used_memory"]) < 0.5 * info["used_memory"]  # the same server's figure
