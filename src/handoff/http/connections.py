"""Connections: the deadlines and the limit uvicorn lacks, and accept errors logged once per interval.

uvicorn (h11) closes a kept-alive connection that stays idle after an answer (`timeout_keep_alive`),
caps header size (`h11_max_incomplete_event_size`) and can answer 503 past a number of requests
(`limit_concurrency`). It has no deadline for a request to arrive: a new connection that never sends
a byte, or sends its headers one byte a second (slowloris), is kept for ever, and each byte even
cancels the keep-alive timer. Enough of them use up the file descriptors and nobody else gets in.

`BoundedH11Protocol` adds, per connection, one timer for the phase the request is in (h11's
`their_state`): the request line and headers must be complete within `header_timeout_seconds` of the
connection opening (or the previous answer ending), the body within `body_timeout_seconds` of the
headers. The deadline is fixed when the phase begins: trickling bytes does not extend it. While the
application answers, no timer runs (its own deadline applies, and SSE streams are long). Past
`max_connections` a new connection is answered 503 and closed at once. `limit_concurrency` is not
used: it counts open SSE streams as well and refuses requests, not connections, so it neither frees
descriptors nor spares clients who hold a stream open.
"""

from __future__ import annotations

import asyncio
import json
import resource
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from handoff.logs import Throttled, get_logger

log = get_logger("handoff.http")

# Descriptors kept for the database, log, analysis workers and the like, besides client connections.
RESERVED_DESCRIPTORS = 256


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_seconds: float
    body_timeout_seconds: float
    max_connections: int


def _refusal() -> bytes:
    body = json.dumps(
        {
            "error": {
                "code": "unavailable",
                "message": "too many open connections to this server (HANDOFF_HTTP__MAX_CONNECTIONS); retry shortly",
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"retry-after: 1\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


REFUSAL = _refusal()


class BoundedH11Protocol(H11Protocol):
    limits: ConnectionLimits  # set on the subclass `bounded_protocol` makes
    slow_closed: Throttled
    over_limit: Throttled

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._phase: type[h11._util.Sentinel] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        if len(self.connections) > self.limits.max_connections:
            self.over_limit.note(max_connections=self.limits.max_connections)
            transport.write(REFUSAL)
            transport.close()
            return
        self._follow_phase()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_phase()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_phase()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _follow_phase(self) -> None:
        phase = self.conn.their_state
        if phase is self._phase or self.transport.is_closing():
            return
        self._phase = phase
        self._cancel_deadline()
        if phase is h11.IDLE:
            self._deadline = self.loop.call_later(self.limits.header_timeout_seconds, self._expire, "header")
        elif phase is h11.SEND_BODY:
            self._deadline = self.loop.call_later(self.limits.body_timeout_seconds, self._expire, "body")

    def _cancel_deadline(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            assert self._deadline is not None
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, phase: str) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.slow_closed.note(waited_for=phase)
            self.transport.close()


def bounded_protocol(limits: ConnectionLimits) -> type[BoundedH11Protocol]:
    """The protocol class to give uvicorn (`Config(http=...)`), carrying this server's limits."""
    attributes = {
        "limits": limits,
        "slow_closed": Throttled(log, "connections closed: request not received within its HANDOFF_HTTP timeout"),
        "over_limit": Throttled(log, "connections refused: HANDOFF_HTTP__MAX_CONNECTIONS reached"),
    }
    return type("BoundedH11Protocol", (BoundedH11Protocol,), attributes)


def fit_descriptor_limit(max_connections: int) -> int:
    """Raise the descriptor limit so `max_connections` sockets fit besides our own files, as far as the
    hard limit allows; the connection limit that fits.

    Past the descriptor limit `accept()` fails, and asyncio then spins: it retries the accept up to
    `backlog` times per wake-up, reporting each failure (with a traceback) and scheduling a retry for
    each. Refusing a connection ourselves (503, closed at once) is cheap by comparison, so the
    connection limit is kept below the descriptors there are.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    reserve = min(RESERVED_DESCRIPTORS, soft // 4)
    wanted = max_connections + reserve
    if soft < wanted and (hard == resource.RLIM_INFINITY or hard > soft):
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    fitting = max(1, soft - min(RESERVED_DESCRIPTORS, soft // 4))
    if fitting < max_connections:
        log.warning(
            "file descriptor limit below HANDOFF_HTTP__MAX_CONNECTIONS: connections limited to what fits",
            descriptors=soft,
            max_connections=fitting,
        )
    return min(max_connections, fitting)


class AcceptErrorLog:
    """A loop exception handler that logs failed accepts (EMFILE, ENFILE, ENOBUFS) once per interval.

    asyncio reports each failed `accept()` with a traceback, up to `backlog` of them per wake-up, and
    schedules a retry for each; with descriptors exhausted that alone filled the log with hundreds of
    MB a minute. Anything else goes to the handler that was there before.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval_seconds: float = 60.0) -> None:
        self._previous = loop.get_exception_handler()
        self._throttled = Throttled(log, "connections not accepted: out of descriptors or memory", interval_seconds)
        loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # A failed accept, or one of the retries asyncio schedules for each (they fail once the
        # listener is closed at shutdown).
        retry = getattr(getattr(context.get("handle"), "_callback", None), "__name__", "") == "_start_serving"
        if retry or str(context.get("message", "")).startswith("socket.accept()"):
            error = context.get("exception")
            self._throttled.note(error=str(error) if error is not None else None)
            return
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)
