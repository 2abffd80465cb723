"""Prometheus metrics: `GET /metrics`, one registry per app.

A registry per app rather than prometheus_client's global one, so that several apps
in one process (the tests) never share or collide on series. With several uvicorn
workers each process counts its own: scrape each, or run one worker per container.
"""

import logging
import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.types import Scope

from app.state import Key, state_of

logger = logging.getLogger(__name__)

UNMATCHED = "<unmatched>"
LOGIN_OUTCOMES = ("success", "failure", "inactive", "rate_limited")
# Methods a client sends are free text: any other one is counted as "other", so that
# a scanner cannot grow the series without bound.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RouteTemplates:
    """The path template a request was routed to, prefixes included (`/api/v1/items/{item_id}`):
    never the raw path, whose ids would make a series (and a log value) per object.

    FastAPI (>= 0.137) keeps included routers nested and puts the router's own route,
    without the inclusion's prefix, in `scope["route"]`; `iter_route_contexts` gives
    each route's full template, looked up here once per app and then by identity.
    """

    def __init__(self) -> None:
        self._by_route: dict[int, list[tuple[re.Pattern[str], str]]] = {}
        self._ordered: list[tuple[re.Pattern[str], str]] = []
        self._routes: list[object] = []  # keeps the ids above from being reused
        self._built_for = -1

    def _build(self, app: FastAPI) -> None:
        self._by_route, self._ordered, self._routes = {}, [], []
        for context in iter_route_contexts(app.routes):
            template, regex = context.path_format, getattr(context, "path_regex", None)
            if template is None or regex is None:
                continue
            self._routes.append(context.original_route)
            self._by_route.setdefault(id(context.original_route), []).append((regex, template))
            self._ordered.append((regex, template))
        self._built_for = len(app.routes)

    def _table(self, scope: Scope) -> bool:
        app = scope.get("app")
        if not isinstance(app, FastAPI):
            return False
        if self._built_for != len(app.routes):  # first request, or routes added since
            self._build(app)
        return True

    def template(self, scope: Scope) -> str:
        route = scope.get("route")
        if not self._table(scope):
            return str(getattr(route, "path", UNMATCHED))
        if route is not None:
            candidates = self._by_route.get(id(route), [])
            if len(candidates) == 1:
                return candidates[0][1]
            path = _route_path(scope)
            for regex, template in candidates:  # one router included under several prefixes
                if regex.match(path):
                    return template
            return str(getattr(route, "path", UNMATCHED))
        # Answered before routing (a CSRF rejection, a CORS preflight) or by no route:
        # only these requests pay for matching.
        path = _route_path(scope)
        for regex, template in self._ordered:
            if regex.match(path):
                return template
        return UNMATCHED


def _route_path(scope: Scope) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from the request reaching the app to its response's end, by route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.logins = Counter(
            "auth_logins", "Login attempts by outcome.", ["outcome"], registry=self.registry
        )
        self.websockets = Gauge(
            "websocket_connections_active",
            "Open live-update WebSockets (/api/v1/ws) of this process.",
            registry=self.registry,
        )
        self.redis_memory = Gauge(
            "redis_memory_used_bytes",
            "Redis's used_memory, read at each scrape (absent on the embedded default).",
            registry=self.registry,
        )
        self.redis_memory_max = Gauge(
            "redis_memory_max_bytes",
            "Redis's maxmemory (0: no cap). Alert well before used reaches it: with"
            " noeviction a full Redis refuses logins and refreshes (503).",
            registry=self.registry,
        )
        # The mail outbox (app/mail): counted by the process that queued or tried the mail.
        self.mail_queued = Counter(
            "mail_queued", "Mails committed to the outbox by this process.", registry=self.registry
        )
        self.mail_sent = Counter(
            "mail_sent", "Mails this process handed to SMTP (or the log).", registry=self.registry
        )
        self.mail_failed = Counter(
            "mail_failed",
            "Failed send attempts of this process: outcome retry (tried again later) or"
            " given_up (the last attempt; the mail stays in the outbox, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.mail_oldest_unsent = Gauge(
            "mail_oldest_unsent_seconds",
            "Age of the oldest mail in the outbox not sent yet (failed ones aside), read at"
            " each scrape: the same value from every replica. Alert when it grows.",
            registry=self.registry,
        )
        for outcome in ("retry", "given_up"):
            self.mail_failed.labels(outcome)
        # Read just before each scrape (the lifespan adds Redis's memory): a failure
        # leaves the previous values, the scrape itself still answers.
        self.before_scrape: list[Callable[[Metrics], Awaitable[None]]] = []
        for outcome in LOGIN_OUTCOMES:  # present at 0 before the first login, so rate() works
            self.logins.labels(outcome)
        # Label lookups validate and lock; the children are cached here so that the two
        # updates every request pays are a dict lookup each.
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._histograms: dict[tuple[str, str], Histogram] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in _METHODS:
            method = "other"
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self._counters[method, route, status] = self.requests.labels(method, route, str(status))
        counter.inc()
        histogram = self._histograms.get((method, route))
        if histogram is None:
            histogram = self._histograms[method, route] = self.duration.labels(method, route)
        histogram.observe(seconds)

    def login(self, outcome: str) -> None:
        if outcome in LOGIN_OUTCOMES:
            self.logins.labels(outcome).inc()


METRICS: Key[Metrics] = Key("metrics")


async def get_metrics(request: Request) -> Response:
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    metrics = state_of(request)[METRICS]
    for update in metrics.before_scrape:
        try:
            await update(metrics)
        except Exception:  # a dependency outage must not take the metrics with it
            logger.warning("a metrics source failed", exc_info=True)
    return Response(encoder(metrics.registry), media_type=content_type)


def install_metrics(app: FastAPI) -> Metrics:
    metrics = Metrics()
    state_of(app)[METRICS] = metrics
    # Not part of the API (API.md section 8: operations, not routed by the proxy).
    app.add_api_route("/metrics", get_metrics, methods=["GET"], include_in_schema=False)
    return metrics
