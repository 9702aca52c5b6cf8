"""The HTTP listener `handoff serve` binds before anything else starts."""

from __future__ import annotations

import asyncio
import socket

import pytest

from handoff.errors import CannotStart
from handoff.http.serving import listen

pytestmark = pytest.mark.anyio


async def test_accepted_connections_send_without_nagle_delay() -> None:
    """Without TCP_NODELAY every small answer waits ~40 ms for the client's delayed ACK."""
    listener = listen("127.0.0.1", 0)
    accepted: asyncio.Queue[asyncio.BaseTransport] = asyncio.Queue()

    class Keep(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.put_nowait(transport)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Keep, sock=listener)
    try:
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        transport = await asyncio.wait_for(accepted.get(), 5)
        sock = transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        writer.close()
        transport.close()
    finally:
        server.close()
        await server.wait_closed()


def test_a_busy_port_is_one_clear_error() -> None:
    with listen("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(CannotStart, match="already in use"):
            listen("127.0.0.1", port)


def test_an_unknown_host_is_one_clear_error() -> None:
    with pytest.raises(CannotStart, match="not an address or host name"):
        listen("no-such-host.invalid", 0)
