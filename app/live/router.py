"""`WebSocket /api/v1/ws`: admission, then the hub takes over."""

from logging import WARNING

from fastapi import APIRouter, WebSocket

from app.audit import audit
from app.auth.csrf import foreign_origin
from app.auth.deps import authenticate
from app.auth.principal import Principal
from app.auth.sessions import SESSION_STORE
from app.errors import ErrorCode, error_response, unavailable
from app.live.broadcast import BROADCASTER, Broadcaster
from app.live.hub import HUB
from app.outage import is_outage
from app.state import SETTINGS, state_of

router = APIRouter(tags=["live"])

# How long a new socket waits for this worker's subscription (just started, or
# reconnecting to Redis) before it is refused with 503 rather than accepted deaf.
READY_TIMEOUT_SECONDS = 2.0
REFUSED_STATUS = 403  # API.md section 7: any refusal during the handshake


async def refuse(websocket: WebSocket, code: ErrorCode) -> None:
    """Answer the handshake with an HTTP error and the contract's envelope: 403 for a
    refused socket, 429 for one socket too many, 503 (with Retry-After) when a backing
    service is down."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        if code is ErrorCode.SERVICE_UNAVAILABLE:
            response = unavailable()
        elif code is ErrorCode.RATE_LIMITED:
            response = error_response(code, "Too many live connections for this user.")
        else:
            response = error_response(code, status_code=REFUSED_STATUS)
        await websocket.send_denial_response(response)
    else:  # a server without the denial extension answers a close before accept with 403
        await websocket.close(1008)


async def _admit(websocket: WebSocket, broadcaster: Broadcaster) -> Principal | ErrorCode:
    # The Origin rule of the CSRF check: browsers always send one on a WebSocket handshake.
    trusted = {origin.lower() for origin in state_of(websocket)[SETTINGS].cors_origins}
    if foreign_origin(websocket.scope, websocket.headers, trusted):
        audit(websocket, "websocket_rejected", "denied", level=WARNING, reason="foreign origin")
        return ErrorCode.CSRF_FAILED
    principal = await authenticate(websocket)
    if principal is None:
        return ErrorCode.NOT_AUTHENTICATED
    if not await broadcaster.ready(READY_TIMEOUT_SECONDS):
        return ErrorCode.SERVICE_UNAVAILABLE
    return principal


@router.websocket("/ws")
async def live_updates(websocket: WebSocket) -> None:
    """Pushes `{"type": "item.created" | "item.updated" | "item.deleted", "item": {...}}` for
    every change to an item the user may see, and `{"type": "ping"}` every 25 s."""
    state = state_of(websocket)
    hub = state[HUB]
    try:
        admitted = await _admit(websocket, state[BROADCASTER])
    except Exception as exc:
        if not is_outage(exc):
            raise
        admitted = ErrorCode.SERVICE_UNAVAILABLE
    if isinstance(admitted, ErrorCode):
        await refuse(websocket, admitted)
        return
    # No await between the count and `add`: concurrent handshakes cannot both slip in.
    if hub.full_for(admitted.user.id):
        await refuse(websocket, ErrorCode.RATE_LIMITED)
        return
    socket = hub.add(websocket, admitted.user, admitted.login_id)
    try:
        # A revocation published between the session read and `add` found no socket to
        # close: look at the login once more, now that one would be found.
        try:
            alive = await state[SESSION_STORE].live_logins({admitted.login_id})
        except Exception as exc:
            if not is_outage(exc):
                raise
            await refuse(websocket, ErrorCode.SERVICE_UNAVAILABLE)
            return
        if not alive:
            await refuse(websocket, ErrorCode.NOT_AUTHENTICATED)
            return
        await websocket.accept()
        await socket.serve()
    finally:
        socket.end(None)  # forgotten by the hub in every case
