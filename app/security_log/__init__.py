"""The security log (API.md section 10). Record with `record_event` (same transaction as
the change) or `record_event_soon` (no database change: written in the background).

Imports only the core of app/ and app.models, so that app/auth can record events; the
routes (router.py) get the caller's identity from the dependencies app/api passes in."""

from app.security_log.events import SecurityEvent
from app.security_log.service import record_event, record_event_soon

__all__ = ["SecurityEvent", "record_event", "record_event_soon"]
