"""Serving MCP over stdio with a stdin that a signal can interrupt.

The SDK reads stdin with a blocking `readline` in a worker thread. Cancelling that read waits for
the thread, so Ctrl-C (or a client's SIGINT) left the server waiting for one more line that would
never come. Here stdin is read without blocking on the event loop, so SIGINT cancels it at once and
the server shuts down cleanly (transactions finished or rolled back, the database closed).
"""

from __future__ import annotations

import os
from typing import Self

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

CHUNK_BYTES = 1 << 16


class StdinLines:
    """Lines of the process's stdin as an async iterator; fd 0 itself is pointed at /dev/null.

    Pointing fd 0 elsewhere keeps children (and stray reads) off the protocol stream, as the SDK does.
    """

    def __init__(self) -> None:
        self._fd = os.dup(0)
        os.set_blocking(self._fd, False)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        self._pending: list[bytes] = []  # pieces of the current line, joined once it is complete
        self._eof = False
        self._pollable = True

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        while True:
            if self._pending and b"\n" in self._pending[-1]:
                head, _, rest = self._pending[-1].partition(b"\n")
                line = b"".join([*self._pending[:-1], head])
                self._pending = [rest] if rest else []
                return line.decode("utf-8", errors="replace") + "\n"
            if self._eof:
                if self._pending:
                    line, self._pending = b"".join(self._pending), []
                    return line.decode("utf-8", errors="replace")
                raise StopAsyncIteration
            if self._pollable:
                try:
                    await anyio.wait_readable(self._fd)
                except PermissionError:  # a regular file or /dev/null: never blocks, cannot be polled
                    self._pollable = False
            try:
                chunk = os.read(self._fd, CHUNK_BYTES)
            except BlockingIOError:
                continue
            if chunk:
                self._pending.append(chunk)  # only the newest piece can hold the end of the line
            else:
                self._eof = True

    def close(self) -> None:
        os.close(self._fd)


async def serve_stdio(server: MCPServer) -> None:
    stdin = StdinLines()
    try:
        async with stdio_server(stdin=stdin) as (read_stream, write_stream):  # type: ignore[arg-type]
            # MCPServer.run_stdio_async, with our stdin: the SDK offers no public hook for the stream.
            lowlevel = server._lowlevel_server
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
    finally:
        stdin.close()
