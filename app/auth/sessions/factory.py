"""The store a deployment gets: Redis when REDIS_URL is set, else the embedded default's."""

from redis.asyncio import Redis

from app.auth.sessions.memory_store import LoginsEnded, MemorySessionStore
from app.auth.sessions.redis_store import RedisSessionStore
from app.auth.sessions.types import RefreshTokens, SessionStore
from app.config import Settings


def create_session_store(
    settings: Settings, redis: Redis | None, *, on_logins_ended: LoginsEnded | None = None
) -> SessionStore:
    """`redis` is the app's client (None on the embedded default). `on_logins_ended` is for
    the memory store only: in Redis the scripts publish ended logins to every worker."""
    refresh_tokens = RefreshTokens(settings.signing_key)
    if redis is None:
        return MemorySessionStore(refresh_tokens, on_logins_ended)
    return RedisSessionStore(redis, prefix=settings.redis_key_prefix, refresh_tokens=refresh_tokens)
