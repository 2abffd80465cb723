"""The HTTP surface: the one place routers are composed (here) and the OpenAPI document
that describes them (openapi.py).

Each domain router is included on the app itself under /api/v1 rather than through
an intermediate /api/v1 router: FastAPI matches nested inclusions level by level,
and that matching was a tenth of an authenticated request's cost.
"""

from fastapi import Depends, FastAPI

from app.admin.router import router as admin_router
from app.auth.deps import current_superuser, current_user
from app.auth.library import router as library_router
from app.auth.mfa.account_router import router as mfa_account_router
from app.auth.mfa.router import router as mfa_router
from app.auth.oidc.router import account_router as oidc_account_router
from app.auth.oidc.router import router as oidc_router
from app.auth.router import router as auth_router
from app.auth.tokens.router import router as tokens_router
from app.health.router import api_router as health_api_router
from app.health.router import router as health_router
from app.items.router import router as items_router
from app.live.router import router as live_router
from app.security_log.router import create_routers as security_log_routers
from app.users.router import router as users_router

API_PREFIX = "/api/v1"


def include_routers(app: FastAPI) -> None:
    security_log_router, security_log_admin_router = security_log_routers(current_user, current_superuser)
    app.include_router(health_router)
    for router in (
        users_router,
        items_router,
        auth_router,
        library_router,  # fastapi-users' register, reset and verify routes
        mfa_router,  # the second step, passkey login, re-authentication
        mfa_account_router,  # /users/me/mfa, /users/me/passkeys
        tokens_router,  # /users/me/tokens
        oidc_router,  # sign-in with OpenID Connect
        oidc_account_router,  # /users/me/identities
        health_api_router,
        live_router,  # WebSocket /api/v1/ws
        security_log_router,  # /users/me/security-events
    ):
        app.include_router(router, prefix=API_PREFIX)
    # Guarded here, once for every admin route: none can be added without it.
    for guarded in (admin_router, security_log_admin_router):
        app.include_router(guarded, prefix=API_PREFIX, dependencies=[Depends(current_superuser)])
