"""A resolver that drops or refuses queries for a moment (app/resolver.py): what podman's
aardvark-dns before 1.11 does on every container start and stop, which failed reads on a
surviving replica (tests/containers/test_compose.py shows it end to end).

The lookups here are real coroutines the test holds or releases: the system resolver
cannot be made to hang on cue. PostgreSQL and Redis are the real ones, reached by name."""

import asyncio
import logging
import socket
from collections.abc import Callable

import pytest
from sqlalchemy import text

from app.db import create_engine
from app.redis import create_client
from app.resolver import FALLBACK_SECONDS, HEDGE_SECONDS, MAX_LOOKUPS, Resolver, getaddrinfo
from tests.conftest import REDIS_URL, make_settings

pytestmark = pytest.mark.slow


class Scripted:
    """Lookups whose answers the test decides: each call takes the next behaviour
    ("hang", "fail", or the addresses), the last one repeating."""

    def __init__(self, *behaviours: object) -> None:
        self.behaviours = list(behaviours)
        self.calls = 0
        self.released = asyncio.Event()

    async def __call__(self, host: str, port: int) -> tuple[str, ...]:
        behaviour = self.behaviours[min(self.calls, len(self.behaviours) - 1)]
        self.calls += 1
        if behaviour == "hang":
            await self.released.wait()
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if behaviour == "fail":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if behaviour == "real":
            return await getaddrinfo(host, port)
        assert isinstance(behaviour, tuple)
        return behaviour


async def timed(call: Callable[[], object]) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await call()  # type: ignore[misc]
    return loop.time() - started


async def test_a_lookup_that_does_not_answer_is_asked_again_and_the_answer_wins(caplog):
    lookup = Scripted("hang", ("10.0.0.7",))
    resolver = Resolver(lookup)
    with caplog.at_level(logging.INFO, logger="app.resolver"):
        assert await resolver.resolve("db", 5432, timeout=2) == ("10.0.0.7",)
    assert lookup.calls == 2
    assert [r.getMessage()[:35] for r in caplog.records] == ["name lookup of db answered after 0."]
    lookup.released.set()


async def test_a_refused_lookup_is_asked_again_after_a_pause_not_in_a_tight_loop():
    lookup = Scripted("fail", "fail", ("10.0.0.8",))
    resolver = Resolver(lookup)
    took = await timed(lambda: resolver.resolve("redis", 6379, timeout=2))
    assert await resolver.resolve("redis", 6379, timeout=2) == ("10.0.0.8",)
    assert lookup.calls == 4  # three for the first resolve, one for the second
    assert took >= 2 * HEDGE_SECONDS * 0.9


async def test_a_name_that_resolved_before_falls_back_to_its_last_addresses_and_says_so(caplog):
    lookup = Scripted(("10.0.0.9", "fd00::9"), "hang")
    resolver = Resolver(lookup)
    assert await resolver.resolve("db", 5432, timeout=3) == ("10.0.0.9", "fd00::9")
    with caplog.at_level(logging.WARNING, logger="app.resolver"):
        took = await timed(lambda: resolver.resolve("db", 5432, timeout=10))
    assert took < 5  # the fallback, not the whole connect timeout
    assert took >= FALLBACK_SECONDS * 0.9
    (record,) = [r for r in caplog.records if r.name == "app.resolver"]
    assert record.getMessage() == (
        "name lookup of db failed (no answer within 0.25 s); connecting to its last addresses 10.0.0.9, fd00::9"
    )
    lookup.released.set()


async def test_a_name_never_resolved_fails_as_an_outage_and_asks_a_bounded_number_of_times():
    lookup = Scripted("hang")
    resolver = Resolver(lookup)
    with pytest.raises(socket.gaierror) as raised:
        await resolver.resolve("db", 5432, timeout=1)
    assert raised.value.errno == socket.EAI_AGAIN
    assert lookup.calls == MAX_LOOKUPS
    lookup.released.set()


async def test_many_connections_waiting_on_one_name_share_its_lookups():
    lookup = Scripted(("10.0.0.1",), "hang")
    resolver = Resolver(lookup)
    await resolver.resolve("redis", 6379, timeout=1)
    answers = await asyncio.gather(*(resolver.resolve("redis", 6379, timeout=1) for _ in range(50)))
    assert set(answers) == {("10.0.0.1",)}
    assert lookup.calls <= 1 + MAX_LOOKUPS
    lookup.released.set()


async def test_addresses_and_socket_paths_are_never_looked_up():
    lookup = Scripted("fail")
    resolver = Resolver(lookup)
    for host in ("127.0.0.1", "::1", "[::1]", "/var/run/postgresql"):
        assert await resolver.resolve(host, 5432, timeout=1) == (host,)
    assert lookup.calls == 0


async def test_redis_by_name_keeps_serving_on_new_connections_while_the_resolver_hangs(caplog):
    by_name = REDIS_URL.replace("127.0.0.1", "localhost")
    assert by_name != REDIS_URL, "the test Redis is not at 127.0.0.1"
    lookup = Scripted("real", "hang")
    client = create_client(make_settings("sqlite://", "lookups:", redis_url=by_name), Resolver(lookup))
    try:
        assert await client.ping()
        await client.connection_pool.disconnect()  # the next command needs a new connection
        with caplog.at_level(logging.WARNING, logger="app.resolver"):
            assert await client.ping()
        assert lookup.calls >= 2
        assert any("name lookup of localhost failed" in r.getMessage() for r in caplog.records)
    finally:
        lookup.released.set()
        await client.aclose()


async def test_postgresql_by_name_keeps_serving_on_new_connections_while_the_resolver_hangs(
    database_url, caplog
):
    by_name = database_url.replace("127.0.0.1", "localhost")
    assert by_name != database_url, "the test PostgreSQL is not at 127.0.0.1"
    lookup = Scripted("real", "hang")
    engine = create_engine(make_settings(by_name, "lookups:"), Resolver(lookup))
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar() == 1
        await engine.dispose()  # the next statement needs a new connection
        with caplog.at_level(logging.WARNING, logger="app.resolver"):
            async with engine.connect() as connection:
                assert (await connection.execute(text("SELECT 1"))).scalar() == 1
        assert lookup.calls >= 2
        assert any("name lookup of localhost failed" in r.getMessage() for r in caplog.records)
    finally:
        lookup.released.set()
        await engine.dispose()
