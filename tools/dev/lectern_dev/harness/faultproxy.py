"""A loopback TCP proxy that misbehaves on demand, put between two of a stack's processes (chat
and retrieval, the gateway and chat) to show what a slow, broken or silent network does to them.

It runs its own event loop in a background thread, so a synchronous test drives it while the
stack's processes talk through it. Its mode changes at run time and applies to the connections
already open as well as to new ones:

- `passthrough()`: bytes go through as they come;
- `latency(ms)`: each chunk is held `ms` in each direction (a delay, not a bandwidth cap:
  chunks keep their order and do not wait for one another);
- `reset()`: every open connection, and each new one, is closed with a TCP RST (SO_LINGER 0),
  as a crashed peer or a middlebox dropping its state would;
- `blackhole()`: connections are accepted and read, and nothing is ever forwarded nor answered,
  as a partition that loses packets looks to both ends. A connection that met the black hole
  stays in it after the mode changes (bytes were lost: what follows would be garbage), so only
  new connections find the way open again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from dataclasses import dataclass

PASS, LATENCY, RESET, BLACKHOLE = "pass", "latency", "reset", "blackhole"
_CHUNK = 65536


@dataclass
class ProxyCounts:
    """What the proxy did, for a test's figures."""

    connections: int = 0
    resets: int = 0
    blackholed: int = 0


class _Link:
    """One client connection and its connection to the target."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.blackholed = False
        self.broken = False  # reset, or one side failed: both sides are closed
        self.tasks: list[asyncio.Task] = []

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client, self.upstream) if w is not None]


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _break(link: _Link) -> None:
    """One side failed (reset, gone): the other is closed too, as through a real hop."""
    link.broken = True
    for writer in link.writers():
        writer.transport.abort()


class FaultProxy:
    """`with FaultProxy(host, port) as proxy:` listens on `proxy.url` (a free loopback port)
    and forwards to host:port until told otherwise."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode, self.latency_ms = PASS, 0.0
        self.counts = ProxyCounts()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- control, from any thread --------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        self._run(self._listen())
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._run(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()

    def passthrough(self) -> None:
        self._set(PASS)

    def latency(self, ms: float) -> None:
        self._set(LATENCY, ms)

    def reset(self) -> None:
        self._set(RESET)

    def blackhole(self) -> None:
        self._set(BLACKHOLE)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _set(self, mode: str, latency_ms: float = 0.0) -> None:
        self._run(self._apply(mode, latency_ms))

    def _run(self, coro) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # ---- the loop's side -----------------------------------------------------------------
    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _apply(self, mode: str, latency_ms: float) -> None:
        self.mode, self.latency_ms = mode, latency_ms
        for link in list(self._links):
            if mode == RESET:
                self._reset(link)
            elif mode == BLACKHOLE and not link.blackholed:
                link.blackholed = True
                self.counts.blackholed += 1

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            for writer in link.writers():
                writer.transport.abort()
            for task in link.tasks:
                task.cancel()

    def _reset(self, link: _Link) -> None:
        link.broken = True
        for writer in link.writers():
            _abort_with_rst(writer)
        self.counts.resets += 1

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts.connections += 1
        link = _Link(writer)
        if self.mode == RESET:
            self._reset(link)
            return
        self._links.add(link)
        try:
            if self.mode == BLACKHOLE:
                link.blackholed = True
                self.counts.blackholed += 1
                await self._swallow(reader)
                return
            try:
                up_reader, link.upstream = await asyncio.open_connection(*self.target)
            except OSError:  # the target refused: so does the proxy, as a real hop would show it
                _abort_with_rst(writer)
                return
            if link.broken:  # reset while connecting
                _abort_with_rst(link.upstream)
                return
            link.tasks = [
                asyncio.create_task(self._pump(reader, link.upstream, link)),
                asyncio.create_task(self._pump(up_reader, writer, link)),
            ]
            await asyncio.gather(*link.tasks, return_exceptions=True)
        finally:
            self._links.discard(link)
            for w in link.writers():
                w.transport.abort() if link.blackholed else w.close()

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while await reader.read(_CHUNK):
                pass

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        """Copy one direction: each chunk stamped with when it is due, so a delay holds every
        chunk equally long without holding the next one back."""
        due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.create_task(self._send(due, writer, link))
        try:
            while data := await reader.read(_CHUNK):
                if link.blackholed:
                    continue
                delay = self.latency_ms / 1000 if self.mode == LATENCY else 0.0
                due.put_nowait((self._loop.time() + delay, data))
            due.put_nowait((0.0, b""))  # the end of this direction, after what is queued
            await sender
        except OSError:
            _break(link)
        finally:
            sender.cancel()

    async def _send(
        self, due: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        while True:
            when, data = await due.get()
            if not data:
                if not link.blackholed and not link.broken and writer.can_write_eof():
                    writer.write_eof()
                return
            if (wait := when - self._loop.time()) > 0:
                await asyncio.sleep(wait)
            if not link.blackholed:
                writer.write(data)
                try:
                    await writer.drain()
                except OSError:
                    _break(link)
                    return
