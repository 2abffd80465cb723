"""Security events: one log record each, with who, what, against whom, from where.

Never pass a password, a token or a cookie here; identifiers and outcomes only.
"""

import logging
from typing import Any

from starlette.requests import HTTPConnection

logger = logging.getLogger("app.audit")


def client_ip(request: HTTPConnection) -> str:
    return request.client.host if request.client else ""


def audit(
    request: HTTPConnection,
    event: str,
    outcome: str,
    *,
    actor: int | None = None,
    target: object = None,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    logger.log(
        level,
        "%s %s",
        event,
        outcome,
        extra={
            "event": event,
            "outcome": outcome,
            "actor": actor,
            "target": target,
            "ip": client_ip(request),
            **fields,
        },
    )
