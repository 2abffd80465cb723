"""Host names of PostgreSQL and Redis, looked up for each new connection, surviving a
resolver that drops or refuses queries for a moment.

Why: a lost DNS query is retried by glibc only after its `timeout` (5 s by default),
longer than our connect timeouts, so a resolver's blip became a 503 for every request
that needed a new connection. Seen with podman: aardvark-dns before 1.11 tears down its
listeners on each SIGHUP, which it gets on every container start and stop
(containers/aardvark-dns#389, fixed by #449), so stopping one backend replica failed
reads on the other while load moved to it (tests/containers). Kubernetes' "5 s DNS
delay" (a conntrack race on parallel A/AAAA queries) is the same shape.

So a lookup that has not answered within HEDGE_SECONDS is asked again, in parallel (a
new query from a new socket), at most MAX_LOOKUPS at a time per name; the first answer
wins. A name that resolved before and does not answer within FALLBACK_SECONDS, or fails,
is connected to at the addresses it last had, and that is logged: a DNS outage should not
become ours, and a host that is really gone fails at connect instead (a 503, as before).
Every new connection still looks its name up, so a recreated container's new address
is found at once. Literal addresses and socket paths are never looked up.
"""

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from app.outage import describe_error

logger = logging.getLogger(__name__)

HEDGE_SECONDS = 0.1
FALLBACK_SECONDS = 0.25
MAX_LOOKUPS = 4

Addresses = tuple[str, ...]
Lookup = Callable[[str, int], Coroutine[Any, Any, Addresses]]


async def getaddrinfo(host: str, port: int) -> Addresses:
    """The system resolver's addresses for a TCP connection, in its preferred order
    (`localhost` may be ::1 first, with the server listening on 127.0.0.1 only: the
    connection tries each, as asyncio's own would)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def needs_lookup(host: str | None) -> bool:
    if not host or host.startswith("/") or "," in host:  # a socket directory, a host list
        return False
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True
    return False


class Resolver:
    def __init__(self, lookup: Lookup = getaddrinfo) -> None:
        self.lookup = lookup
        self.known: dict[tuple[str, int], Addresses] = {}
        # Lookups under way, shared by every connection waiting on the same name: a
        # resolver that hangs holds at most MAX_LOOKUPS threads per name, not one per request.
        self.pending: dict[tuple[str, int], set[asyncio.Task[Addresses]]] = {}
        self.last_started: dict[tuple[str, int], float] = {}
        self.failing: dict[tuple[str, int], bool] = {}

    async def resolve(self, host: str, port: int, timeout: float) -> Addresses:
        """The addresses to connect to for `host`, in order, within `timeout` seconds."""
        if not needs_lookup(host):
            return (host,)
        key = (host, port)
        loop = asyncio.get_running_loop()
        known = self.known.get(key)
        patience = min(timeout, FALLBACK_SECONDS) if known else timeout
        began = loop.time()
        give_up = began + patience
        error: BaseException | None = None
        while (now := loop.time()) < give_up:
            pending = self.pending.setdefault(key, set())
            since = now - self.last_started.get(key, -1e9)
            if len(pending) < MAX_LOOKUPS and (
                since >= HEDGE_SECONDS or not (pending or self.failing.get(key))
            ):
                self._start(key)
            elif not pending:
                # The last lookup failed moments ago (refused, NXDOMAIN from a fallback
                # server): ask again after the hedge interval, not in a tight loop.
                await asyncio.sleep(min(HEDGE_SECONDS - since, give_up - now))
                continue
            wait = min(HEDGE_SECONDS, give_up - now)
            done, _ = await asyncio.wait(set(pending), timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.cancelled():
                    continue
                if task.exception() is None:
                    if (took := loop.time() - began) >= HEDGE_SECONDS:
                        # Rare and worth knowing: the resolver is faltering.
                        logger.info("name lookup of %s answered after %.2f s", host, took)
                    return task.result()
                error = task.exception()
        reason = describe_error(error) if error else f"no answer within {patience:.2f} s"
        if known:
            logger.warning(
                "name lookup of %s failed (%s); connecting to its last addresses %s",
                host,
                reason,
                ", ".join(known),
            )
            return known
        if error is not None:
            raise error
        raise socket.gaierror(socket.EAI_AGAIN, f"no answer for {host} within {timeout:.2f} s")

    def _start(self, key: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        task: asyncio.Task[Addresses] = loop.create_task(self.lookup(*key))
        self.pending.setdefault(key, set()).add(task)
        self.last_started[key] = loop.time()

        def finished(task: asyncio.Task[Addresses]) -> None:
            self.pending.get(key, set()).discard(task)
            if task.cancelled():
                return
            self.failing[key] = task.exception() is not None
            if not self.failing[key]:
                self.known[key] = task.result()

        task.add_done_callback(finished)


# One per process: what a name resolves to does not depend on which app asks.
RESOLVER = Resolver()
