"""Security events and admin actions: one log record each, with who, what, against whom,
from where, and how it ended (ASVS 16.2.1, 16.3.x).

The formatter (app/logs.py) adds the UTC time and the request id; the record carries
event, outcome, actor (user id), target, ip and any extra identifiers. Never pass a
password, a token or a cookie here; identifiers and outcomes only.
"""

import logging
from typing import Any

from starlette.requests import HTTPConnection

logger = logging.getLogger("app.audit")


def client_ip(request: HTTPConnection) -> str:
    return request.client.host if request.client else ""


def audit(
    request: HTTPConnection | None,
    event: str,
    outcome: str,
    *,
    actor: int | None = None,
    target: object = None,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    """`request` is None for actions outside HTTP (the command line): no ip, no request id."""
    ip = client_ip(request) if request is not None else None
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
            "ip": ip,
            **fields,
        },
    )
