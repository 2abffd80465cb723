"""The ASGI application: `app.main:app`."""

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import partial

import anyio.to_thread
from fastapi import FastAPI
from pydantic import ValidationError
from redis.asyncio import Redis
from starlette.middleware.cors import CORSMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import __version__
from app.api import include_routers
from app.api.docs import DocsPolicyMiddleware, create_fastapi
from app.api.openapi import install_openapi
from app.auth.account.devices import DEVICES, DeviceCookies
from app.auth.backend import BACKEND, create_backend
from app.auth.cache import STORE
from app.auth.cookies import COOKIES, CookiePolicy
from app.auth.csrf import CSRF, CSRF_HEADER, CsrfMiddleware, CsrfSigner
from app.auth.mfa.challenges import CHALLENGES, create_challenges
from app.auth.mfa.factors import MFA_KEYS, MfaKeys
from app.auth.oidc.providers import OIDC, Providers
from app.auth.passwords import dummy_hash
from app.auth.ratelimit import RATE_LIMITS, RateLimits
from app.auth.sessions import SESSION_STORE
from app.auth.sessions.factory import create_session_store
from app.config import Settings, load_settings
from app.db import ENGINE, SESSIONMAKER, create_engine, create_sessionmaker
from app.errors import install_error_handlers
from app.items.cursor import CURSORS, Cursors
from app.live.broadcast import BROADCASTER, create_broadcaster
from app.live.hub import HUB, Hub
from app.live.publish import BROADCASTER as BROADCASTER_INFO
from app.logs import configure_logging, configure_sentry
from app.mail import OUTBOX, Outbox
from app.mail.outbox import OUTBOX_INFO
from app.metrics import METRICS, Metrics, install_metrics
from app.middleware import RequestContextMiddleware
from app.ops.bootstrap import ensure_first_superuser_eventually, migrate
from app.redis import create_client
from app.security_log import service as security_log
from app.state import SETTINGS, attach, mark_started, state_of

logger = logging.getLogger("app")


async def _redis_memory(redis: Redis, metrics: Metrics) -> None:
    memory = await redis.info("memory")
    metrics.redis_memory.set(memory["used_memory"])
    metrics.redis_memory_max.set(memory.get("maxmemory", 0))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state = state_of(app)
    settings = state[SETTINGS]
    if settings.embedded:
        await anyio.to_thread.run_sync(migrate, settings)
    engine = create_engine(settings)
    redis = create_client(settings) if settings.redis_url else None
    # Live updates (app/live): this worker's sockets, and what brings every change to them.
    hub = Hub(gauge=state[METRICS].websockets)
    store = create_session_store(settings, redis, on_logins_ended=hub.end_logins)
    broadcaster = create_broadcaster(settings, hub, redis, store.live_logins)
    await broadcaster.start()
    state[ENGINE] = engine
    state[SESSION_STORE] = store
    state[CHALLENGES] = create_challenges(redis, settings.redis_key_prefix)
    state[HUB] = hub
    state[BROADCASTER] = broadcaster
    # The mail outbox's sender (app/mail): a commit that queued mail wakes it.
    outbox = state[OUTBOX] = Outbox(settings, state[METRICS])
    # A unit of work finds the store (user snapshots, app/auth/cache.py), the
    # broadcaster (item events, app/live/publish.py) and the outbox in its session's info.
    sessionmaker = create_sessionmaker(
        engine, **{STORE: store, BROADCASTER_INFO: broadcaster, OUTBOX_INFO: outbox}
    )
    state[SESSIONMAKER] = sessionmaker
    outbox.start(sessionmaker)
    if redis is not None:
        state[METRICS].before_scrape.append(partial(_redis_memory, redis))
    mark_started(app)
    await anyio.to_thread.run_sync(dummy_hash)  # the first unknown-user login should not pay for it
    bootstrap = asyncio.create_task(ensure_first_superuser_eventually(settings, sessionmaker))
    pruning = security_log.start(sessionmaker, settings)
    # Everything allocated so far lives as long as the process: keep it out of the
    # collector's full passes, which otherwise dominate the latency tail under load.
    gc.freeze()
    try:
        yield
    finally:
        bootstrap.cancel()
        with suppress(asyncio.CancelledError):
            await bootstrap
        await security_log.stop(pruning)
        await outbox.stop()
        await broadcaster.close()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings)
    configure_sentry(settings)
    app = create_fastapi(
        docs=settings.show_docs,
        title="Cookie-session backend",
        version=__version__,
        lifespan=lifespan,
        telemetry=None if settings.otel_enabled else {"tracing": False, "metrics": False, "logs": False},
    )
    # What the middleware and the routes' documentation need exists before the lifespan runs.
    state = attach(app, settings)
    cookies = CookiePolicy.from_settings(settings)
    csrf = CsrfSigner(settings.signing_key, max_age=settings.refresh_token_seconds)
    state[COOKIES] = cookies
    state[CSRF] = csrf
    state[BACKEND] = create_backend(cookies)
    state[RATE_LIMITS] = RateLimits(settings)
    state[MFA_KEYS] = MfaKeys.from_settings(settings)
    state[CURSORS] = Cursors(settings.signing_key)
    state[DEVICES] = DeviceCookies(settings.signing_key, cookies.device)
    state[OIDC] = Providers(settings)

    install_error_handlers(app)
    include_routers(app)
    metrics = install_metrics(app)
    install_openapi(app)

    # Added innermost first: the request context wraps everything, CORS answers
    # preflights before the CSRF check sees them.
    if settings.show_docs:
        app.add_middleware(DocsPolicyMiddleware)
    app.add_middleware(CsrfMiddleware, signer=csrf, cookies=cookies, trusted_origins=settings.cors_origins)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Content-Type", CSRF_HEADER],
        )
    app.add_middleware(
        RequestContextMiddleware,
        credential_cookies=(cookies.session, cookies.refresh, cookies.mfa, cookies.oidc),
        metrics=metrics,
    )
    # The client address (logs, rate limits, the sessions list) comes from
    # X-Forwarded-For only when the direct peer is a trusted proxy. uvicorn does the
    # same from the same FORWARDED_ALLOW_IPS; applying it here too keeps the rule
    # true under any server, and a second pass changes nothing.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    return app


def _app_or_exit() -> FastAPI:
    try:
        return create_app()
    except ValidationError as exc:
        # One clear line instead of a traceback: the operator's fix is in the message.
        reasons = "; ".join(
            (f"{str(err['loc'][0]).upper()}: " if err["loc"] else "")
            + str(err["msg"]).removeprefix("Value error, ")
            for err in exc.errors()
        )
        sys.stderr.write(f"refusing to start: {reasons}\n")
        raise SystemExit(1) from None


app = _app_or_exit()
