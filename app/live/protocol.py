"""uvicorn's WebSocket protocol (its default: websockets' sans-I/O one) with refused
handshakes logged as what they are, a routine answer rather than a server fault.

Served with `uvicorn --ws app.live.protocol:LiveWebSocketProtocol` (docker/entrypoint.sh,
`make run`, the benchmarks' server, the tests' servers). Without it the app works the same,
but every handshake refused with an HTTP response (router.refuse: no session, a foreign
origin, 429, 503) logs

  ERROR uvicorn.error  ASGI callable returned without completing handshake.

because uvicorn 0.3x-0.5x counts a handshake as complete only when accepted or closed,
not when answered through the denial-response extension: anyone, without an account,
could fill the error log. Here a refusal logs uvicorn's one INFO line
(`"WebSocket /api/v1/ws" 403`); websockets' own INFO lines for the same handshake
("connection rejected", "connection open") go to DEBUG.
"""

import logging
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class _Quieter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets' connection logger with its INFO lines (each a repeat of uvicorn's
    line for the same handshake) demoted to DEBUG."""

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


class LiveWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.logger = _Quieter(self.conn.logger, {})

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            # The HTTP response answered the handshake (and uvicorn closed the connection):
            # it is complete, so returning now is no error and calls for no 500 either.
            self.handshake_complete = True
