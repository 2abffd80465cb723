"""The rate-limit tests' stack (tests/auth/test_rate_limits.py), shared with the device
cookie tests."""

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from tests.auth.test_rate_limits import Stack


@pytest.fixture
async def stack(database_url: str, redis, monkeypatch) -> AsyncIterator[Stack]:
    # The proxy tests are about the default FORWARDED_ALLOW_IPS, whatever this shell exports.
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    prefix = f"test:rl:{uuid.uuid4().hex}:"
    try:
        async with AsyncExitStack() as exits:
            yield Stack(database_url, prefix, exits)
    finally:
        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            await redis.delete(key)
