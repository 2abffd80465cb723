"""The one place routers are composed."""

from fastapi import APIRouter

from app.auth.router import router as auth_router
from app.health.router import readiness
from app.health.router import router as health_router
from app.items.router import router as items_router
from app.users.router import router as users_router

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(auth_router)
api_router.include_router(users_router)
api_router.include_router(items_router)
api_router.add_api_route(
    "/health", readiness, methods=["GET"], tags=["health"], summary="Readiness (same as /health)",
    response_model=None, include_in_schema=True,
)

root_router = APIRouter()
root_router.include_router(health_router)
