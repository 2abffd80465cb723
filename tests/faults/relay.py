"""A TCP relay in front of the shared PostgreSQL, so a test can fake its faults without touching it.

`forward` passes bytes both ways. `refuse` closes the listening socket and cuts every
live connection, as a stopped server does. `hang` keeps accepting and holding
connections but passes no byte either way, as a paused (SIGSTOP) server does; `forward`
again lets the held bytes through, as SIGCONT would.
"""

import asyncio
from typing import Literal

Mode = Literal["forward", "refuse", "hang"]
CHUNK = 65536


class Relay:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0  # chosen at the first start, then kept so the app's URL stays right
        self.mode: Mode = "forward"
        self.server: asyncio.Server | None = None
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.links: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def set_mode(self, mode: Mode) -> None:
        if mode == "refuse":
            await self._stop_listening()
            await self._cut()
        elif self.server is None:
            await self.start()
        if mode == "hang":
            self.hang_now()
        else:
            self.flowing.set()
            self.mode = mode

    def hang_now(self) -> None:
        """`hang` without awaiting: callable from a synchronous hook (a SQLAlchemy pool event)."""
        self.flowing.clear()
        self.mode = "hang"

    async def close(self) -> None:
        await self._stop_listening()
        await self._cut()

    async def _stop_listening(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def _cut(self) -> None:
        for task in list(self.links):
            task.cancel()
        await asyncio.gather(*self.links, return_exceptions=True)

    async def _link(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.links.add(task)
        writers = [client_writer]
        try:
            await self.flowing.wait()  # a paused server accepts (the kernel does) but never answers
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            writers.append(upstream_writer)
            await asyncio.gather(
                self._pump(client_reader, upstream_writer), self._pump(upstream_reader, client_writer)
            )
        except (OSError, asyncio.CancelledError):
            pass  # a cut, or PostgreSQL unreachable: the client sees its connection close
        finally:
            for writer in writers:
                writer.close()
            self.links.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass  # reset by one side: treated like a close
        finally:
            # Close the other side too, which ends the opposite pump with EOF.
            writer.close()
