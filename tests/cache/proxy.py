"""A TCP proxy in front of Redis that a test can stall: it keeps accepting, but forwards nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio import CancelScope
from anyio.abc import SocketAttribute, SocketStream


class StallableProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0  # client connections accepted so far
        self._flowing = anyio.Event()
        self._flowing.set()

    def stall(self) -> None:
        """From now on, hold every byte in either direction (and do not connect new clients upstream)."""
        if self._flowing.is_set():
            self._flowing = anyio.Event()

    def resume(self) -> None:
        self._flowing.set()

    async def _wait_flowing(self) -> None:
        await self._flowing.wait()

    async def handle(self, client: SocketStream) -> None:
        async with client:
            self.connections += 1
            await self._wait_flowing()
            try:
                upstream = await anyio.connect_tcp(self.upstream_host, self.upstream_port)
            except OSError:
                return
            async with upstream, anyio.create_task_group() as tg:
                tg.start_soon(self._pump, client, upstream, tg.cancel_scope)
                tg.start_soon(self._pump, upstream, client, tg.cancel_scope)

    async def _pump(self, source: SocketStream, sink: SocketStream, scope: CancelScope) -> None:
        try:
            async for chunk in source:
                await self._wait_flowing()
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            scope.cancel()


@asynccontextmanager
async def stallable_proxy(upstream_host: str, upstream_port: int) -> AsyncIterator[StallableProxy]:
    proxy = StallableProxy(upstream_host, upstream_port)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener, anyio.create_task_group() as tg:
        proxy.port = listener.extra(SocketAttribute.local_port)
        tg.start_soon(listener.serve, proxy.handle)
        try:
            yield proxy
        finally:
            tg.cancel_scope.cancel()
