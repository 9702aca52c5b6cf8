"""A TCP proxy between the server and PostgreSQL that a test can slow down or stall.

It runs on the test's own event loop (the server is another process). `latency` delays every chunk
in both directions; `stall()` holds every byte from then on (connections stay open and silent, as
with a hung database or a dead network path), and new connections are accepted but not forwarded
until `resume()`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio import CancelScope
from anyio.abc import SocketAttribute, SocketStream


class FaultyProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = 0
        self.latency = 0.0
        self.accepted = 0  # connections from the server so far
        self.open = 0  # of those, still open
        self.most_open = 0
        self._flowing = anyio.Event()
        self._flowing.set()

    @property
    def stalled(self) -> bool:
        return not self._flowing.is_set()

    def stall(self) -> None:
        if self._flowing.is_set():
            self._flowing = anyio.Event()

    def resume(self) -> None:
        self._flowing.set()

    async def _handle(self, downstream: SocketStream) -> None:
        self.accepted += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            async with downstream:
                await self._flowing.wait()
                try:
                    upstream = await anyio.connect_tcp(self.upstream_host, self.upstream_port)
                except OSError:
                    return
                async with upstream, anyio.create_task_group() as tg:
                    tg.start_soon(self._pump, downstream, upstream, tg.cancel_scope)
                    tg.start_soon(self._pump, upstream, downstream, tg.cancel_scope)
        finally:
            self.open -= 1

    async def _pump(self, source: SocketStream, sink: SocketStream, both: CancelScope) -> None:
        try:
            async for chunk in source:
                if self.latency:
                    await anyio.sleep(self.latency)  # the simulated network delay itself
                await self._flowing.wait()
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            both.cancel()  # one side closed: close the other


@asynccontextmanager
async def faulty_proxy(upstream_host: str, upstream_port: int) -> AsyncIterator[FaultyProxy]:
    proxy = FaultyProxy(upstream_host, upstream_port)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener, anyio.create_task_group() as tg:
        proxy.port = listener.extra(SocketAttribute.local_port)
        tg.start_soon(listener.serve, proxy._handle)
        try:
            yield proxy
        finally:
            proxy.resume()
            tg.cancel_scope.cancel()
