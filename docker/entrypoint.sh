#!/bin/sh
# Container entry point: wait for PostgreSQL and Redis (bounded), migrate, then exec
# uvicorn so that it is PID 1 and receives SIGTERM directly. The first superuser
# (FIRST_SUPERUSER_*) is created by the app itself at start-up.
set -eu

# Long enough for a cold PostgreSQL start; short enough that a wrong URL fails visibly
# instead of hanging behind a restart policy.
WAIT_TIMEOUT_SECONDS="${WAIT_TIMEOUT_SECONDS:-60}"
export WAIT_TIMEOUT_SECONDS

log() { printf 'entrypoint: %s\n' "$*" >&2; }

# The URLs are read through the app's own settings (environment and .env, with the
# production checks), so the script waits for exactly what the app will connect to.
# Only host and port are printed: the URLs carry passwords.
python - <<'PY'
import asyncio
import os
import sys
import time
from urllib.parse import urlsplit

from pydantic import ValidationError

from app.config import load_settings

try:
    settings = load_settings()
except ValidationError as exc:
    for err in exc.errors():
        sys.exit(f"entrypoint: configuration refused: {err['msg']}")

deadline = time.monotonic() + float(os.environ["WAIT_TIMEOUT_SECONDS"])


def where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or ''}".rstrip(":")


async def postgres_up(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1), timeout=2)
    await conn.close()


async def redis_up(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def wait(name: str, url: str, check) -> None:
    announced = False
    while True:
        try:
            await check(url)
            print(f"entrypoint: {name} at {where(url)} is up", file=sys.stderr)
            return
        except Exception as exc:
            if time.monotonic() >= deadline:
                sys.exit(
                    f"entrypoint: {name} at {where(url)} not reachable after "
                    f"{os.environ['WAIT_TIMEOUT_SECONDS']} s ({type(exc).__name__}: {exc}); giving up"
                )
            if not announced:
                print(f"entrypoint: waiting for {name} at {where(url)}", file=sys.stderr)
                announced = True
            await asyncio.sleep(1)


async def main() -> None:
    # The embedded default (no DATABASE_URL / REDIS_URL) has nothing to wait for.
    if settings.database_url:
        await wait("PostgreSQL", settings.sqlalchemy_url, postgres_up)
    if settings.redis_url:
        await wait("Redis", settings.redis_url, redis_up)


asyncio.run(main())
PY

# Before any worker starts, so that no worker serves an old schema. Replicas starting
# together take turns (a PostgreSQL advisory lock in alembic/env.py): the first
# migrates, the others then find the schema at head.
log "applying migrations"
python -m app migrate

# Live-update messages are a few hundred bytes of JSON: permessage-deflate saves little
# on them and costs each socket its zlib state (make bench: 78 -> 44 KiB per socket
# without it, and a 1,000-socket fan-out 7% faster).
# Clients send us nothing that matters (app/live/hub.py): uvicorn refuses frames over
# 64 KiB (close 1009) before buffering them, instead of its 16 MiB default; the hub
# closes on anything over 4 KiB. The --ws protocol is uvicorn's own, with refused
# handshakes logged at INFO instead of ERROR (app/live/protocol.py).
# Forwarded headers are believed only from the proxy network (compose sets it to the
# edge network's subnet); 127.0.0.1 is the safe default outside compose.
log "starting uvicorn on port ${PORT:-8000} with ${WEB_CONCURRENCY:-1} worker(s)"
exec uvicorn app.main:app \
    --host "${LISTEN_HOST:-0.0.0.0}" \
    --port "${PORT:-8000}" \
    --workers "${WEB_CONCURRENCY:-1}" \
    --proxy-headers \
    --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1}" \
    --ws-per-message-deflate false \
    --ws-max-size 65536 \
    --ws app.live.protocol:LiveWebSocketProtocol
