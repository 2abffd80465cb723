"""Liveness (/healthz: the process serves) and readiness (/health: the dependencies answer)."""

import asyncio
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from app import __version__
from app.auth.sessions import SESSION_STORE
from app.db import ENGINE, ping
from app.errors import ErrorCode, responses, unavailable
from app.state import SETTINGS, STARTED_AT, state_of

CHECK_TIMEOUT_SECONDS = 2.0

router = APIRouter(tags=["health"])
api_router = APIRouter(tags=["health"])  # the same readiness check under /api/v1


class Liveness(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    uptime_seconds: int
    db: str
    redis: str
    version: str


async def _check(probe: object) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)  # type: ignore[arg-type]
    except Exception:
        return "unavailable"
    return "ok"


_ALIVE = b'{"status":"ok"}'


@router.get("/healthz", response_model=Liveness, summary="Liveness: no dependency checks")
async def liveness() -> Response:
    # The probe an orchestrator sends every few seconds: a constant body, without building
    # and validating a model per call (Liveness still describes it in the OpenAPI document).
    return Response(_ALIVE, media_type="application/json")


@router.get(
    "/health",
    response_model=Readiness,
    summary="Readiness: PostgreSQL and Redis answer",
    responses=responses(ErrorCode.SERVICE_UNAVAILABLE),
)
@api_router.get(
    "/health",
    response_model=Readiness,
    summary="Readiness: PostgreSQL and Redis answer",
    responses=responses(ErrorCode.SERVICE_UNAVAILABLE),
    operation_id="api_readiness",
)
async def readiness(request: Request) -> Readiness | JSONResponse:
    state = state_of(request)
    redis_probe = state[SESSION_STORE].ping() if state[SETTINGS].redis_url else None
    db, redis = await asyncio.gather(
        _check(ping(state[ENGINE])), _check(redis_probe) if redis_probe else _not_configured()
    )
    failed = {name: status for name, status in (("db", db), ("redis", redis)) if status == "unavailable"}
    if failed:
        return unavailable(failed)
    return Readiness(
        status="ok",
        uptime_seconds=int(time.monotonic() - state[STARTED_AT]),
        db=db,
        redis=redis,
        version=__version__,
    )


async def _not_configured() -> str:
    return "not_configured"
