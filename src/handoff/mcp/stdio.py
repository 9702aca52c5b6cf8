"""Serving MCP over stdio with a stdin that a signal can interrupt.

The SDK reads stdin with a blocking `readline` in a worker thread. Cancelling that read waits for
the thread, so Ctrl-C (or a client's SIGINT) left the server waiting for one more line that would
never come. Here stdin is read without blocking on the event loop, so SIGINT cancels it at once and
the server shuts down cleanly (transactions finished or rolled back, the database closed).

A line the SDK cannot parse as a JSON-RPC message (`"params": "x"`, a lone UTF-16 surrogate, text
that is not JSON) is dropped by the SDK with a debug log: a client that sent a request with an id
then waits for an answer that never comes. Such lines are answered here instead, with the id when
it can be read: invalid request (-32600), or parse error (-32700, id null) when it is not JSON.
"""

from __future__ import annotations

import json
import os
from types import TracebackType
from typing import Any, Self

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from handoff.logs import get_logger

log = get_logger(__name__)

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


def answer_to_unparsed(error: Exception) -> types.JSONRPCError | None:
    """The error a client should get for a line the SDK could not parse, or None when no answer is due
    (a malformed notification or response: nobody waits for it)."""
    if not isinstance(error, ValidationError):
        return None
    problems = error.errors(include_url=False)
    message: Any = None
    for problem in problems:
        if problem["type"] == "json_invalid":  # pydantic refuses it; json may still read the id
            try:
                message = json.loads(problem["input"])
            except (ValueError, TypeError):
                return _error(None, types.PARSE_ERROR, "parse error: the line is not JSON")
            break
        if isinstance(problem["input"], dict) and "method" in problem["input"]:
            message = problem["input"]  # the whole message, from a problem in one of its fields
            break
        if isinstance(problem["input"], list):
            message = problem["input"]
            break
    if isinstance(message, list):
        # JSON-RPC batches left MCP in 2025-06-18; a client still sending one waits on every id in it.
        return _error(None, types.INVALID_REQUEST, "invalid request: batches (JSON arrays) are not supported")
    if not isinstance(message, dict) or "method" not in message:
        return None
    request_id = message.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        # A notification. (The SDK reads a message whose id is an object as a notification, extra
        # field and all, so such a request never reaches this point: it goes unanswered.)
        return None
    return _error(request_id, types.INVALID_REQUEST, "invalid request: not a well-formed JSON-RPC request")


def _error(request_id: str | int | None, code: int, message: str) -> types.JSONRPCError:
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))


class AnsweringReads:
    """The SDK's read stream, with the lines it could not parse answered instead of silently dropped."""

    def __init__(self, inner: Any, write_stream: Any) -> None:
        self._inner = inner
        self._write_stream = write_stream

    @property
    def last_context(self) -> Any:  # the SDK reads the sender's context from here
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        while True:
            item: SessionMessage | Exception = await self._inner.receive()
            answer = answer_to_unparsed(item) if isinstance(item, Exception) else None
            if answer is None:
                return item
            log.info("unparsable message answered", rpc_code=answer.error.code, request_id=answer.id)
            await self._write_stream.send(SessionMessage(answer))

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def serve_stdio(server: MCPServer) -> None:
    stdin = StdinLines()
    try:
        async with stdio_server(stdin=stdin) as (read_stream, write_stream):  # type: ignore[arg-type]
            # MCPServer.run_stdio_async, with our stdin: the SDK offers no public hook for the stream.
            lowlevel = server._lowlevel_server
            reads = AnsweringReads(read_stream, write_stream)
            await lowlevel.run(reads, write_stream, lowlevel.create_initialization_options())
    finally:
        stdin.close()
