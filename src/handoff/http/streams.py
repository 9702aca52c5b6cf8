"""Resumable streamable-HTTP streams: the SDK's `EventStore`, kept in the database, one per MCP session.

The SDK's session manager hands one event store to every session it opens and calls it with a
stream id only: the JSON-RPC request id, which is `1` in every session. A store shared as given
would replay one client's answers to another client who reconnects with a guessed id. So each
session gets its own store as the manager admits it (`own_event_store`), owned by the session's
id (as a fingerprint) and the authenticated agent of the request that opened it; a replay is
served only to the same pair, and its event ids carry a random stream key (domain/streams.py).

The SDK keeps an MCP session in the memory of the replica that opened it, and any request naming it
on another replica is answered 404 before an event store is asked; http/resume.py serves such a
reconnect from the database instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamableHTTPServerTransport,
    StreamId,
)
from mcp_types import INTERNAL_ERROR, ErrorData, JSONRPCError, JSONRPCMessage, JSONRPCResponse
from mcp_types import jsonrpc_message_adapter as messages

from handoff.domain.streams import (
    NewStreamEvent,
    StreamOwner,
    fingerprint,
    format_event_id,
    new_stream_key,
    parse_event_id,
)
from handoff.http.admission import requester
from handoff.logs import get_logger
from handoff.services.streams import StreamService

log = get_logger("handoff.http")

# How long new events of a resumed stream wait for the reconnected client to be forwarded to.
RESUME_WAIT_SECONDS = 2.0


@dataclass
class _Stream:
    stream_id: str
    key: str
    next_seq: int = 0
    # Events handed to the writer and not stored yet; `stored` is set whenever that is none.
    pending: int = 0
    stored: anyio.Event = field(default_factory=anyio.Event)
    answered: bool = False
    # Set by a replay after which the SDK will tail the stream live; see `_until_live`.
    resuming: bool = False

    def __post_init__(self) -> None:
        self.stored.set()


class SessionEventStore(EventStore):
    """The events of one MCP session's streams, in the database through `StreamService`.

    Events are numbered here and stored behind the answer (services/streams.py); a replay first
    waits until its stream's events are stored. The SDK replays a stream, then primes the
    reconnected stream and only then starts forwarding new events to it. An event sent in between
    would be neither replayed nor forwarded, and the new priming event's id, newer than it, would
    skip it on the next reconnect too: a tool's answer could be lost that way. Two things close the
    gap. Once a replay has begun, new events of that stream wait (briefly, bounded) until the
    transport forwards them again; and the priming event of a resumed stream carries the position
    the replay ended at instead of a new one.
    """

    def __init__(self, service: StreamService, owner: StreamOwner, is_live: Callable[[str], bool]) -> None:
        self._service = service
        self._owner = owner
        self._is_live = is_live
        # Streams by their transport id and by their key. A stream is forgotten once its answer is
        # stored. Only this replica writes this session's streams, so its numbering is the truth.
        self._streams: dict[str, _Stream] = {}
        self._by_key: dict[str, _Stream] = {}
        self._replayed_to: dict[str, str] = {}

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        if message is None and stream_id in self._replayed_to:
            return self._replayed_to.pop(stream_id)
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = self._streams[stream_id] = _Stream(stream_id, new_stream_key())
            self._by_key[stream.key] = stream
        if stream.resuming and message is not None:
            await self._until_live(stream_id, stream)
        seq = stream.next_seq
        stream.next_seq += 1
        payload = None if message is None else self._payload(message)
        if stream.pending == 0:
            stream.stored = anyio.Event()
        stream.pending += 1
        if isinstance(message, JSONRPCResponse | JSONRPCError) and stream_id != GET_STREAM_KEY:
            stream.answered = True  # the answer ends a request's stream
            self._streams.pop(stream_id, None)
        event = NewStreamEvent(self._owner, stream.key, stream_id, seq, payload)
        await self._service.append(event, lambda: self._stored(stream))
        return format_event_id(stream.key, seq)

    def _stored(self, stream: _Stream) -> None:
        stream.pending -= 1
        if stream.pending == 0:
            stream.stored.set()
            if stream.answered:
                self._by_key.pop(stream.key, None)

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        if requester() != self._owner.agent:
            log.warning("stream replay refused: another agent than the one that opened the session")
            return None
        parsed = parse_event_id(last_event_id)
        stream = None if parsed is None else self._by_key.get(parsed[0])
        if stream is not None:
            # The SDK tails a replayed stream only when no other connection still receives it;
            # from here on, the stream's new events wait for that tail (`_until_live`).
            stream.resuming = not stream.answered and not self._is_live(stream.stream_id)
            with anyio.move_on_after(RESUME_WAIT_SECONDS):
                await stream.stored.wait()
        position = await self._service.locate(self._owner, last_event_id)
        if position is None:
            log.info("stream replay: unknown, foreign or expired Last-Event-ID")
            if stream is not None:
                stream.resuming = False
            return None
        replayed = await self._service.events_after(self._owner, position)
        for event in replayed:
            if event.payload is not None:  # priming events mark a position; they carry nothing
                await send_callback(EventMessage(messages.validate_json(event.payload), event.event_id))
        self._replayed_to[position.stream_id] = replayed[-1].event_id if replayed else position.event_id
        return position.stream_id

    async def _until_live(self, stream_id: str, stream: _Stream) -> None:
        """Wait until the transport forwards the resumed stream again (or the reconnect has gone)."""
        with anyio.move_on_after(RESUME_WAIT_SECONDS):
            while not self._is_live(stream_id):
                await anyio.sleep(0.002)  # the SDK offers nothing to wait on; this is a few loop turns
        stream.resuming = False

    def _payload(self, message: JSONRPCMessage) -> str | None:
        payload = message.model_dump_json(by_alias=True, exclude_unset=True)
        size = len(payload.encode())
        limit = self._service.settings.max_event_bytes
        if size <= limit:
            return payload
        # Too large to keep: an answer is replayed as an error saying so (the client is not left
        # waiting for an answer that never comes); a notification is left out of the replay.
        if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id is not None:
            error = ErrorData(
                code=INTERNAL_ERROR,
                message=(
                    f"the answer ({size} bytes) was larger than HANDOFF_STREAMS__MAX_EVENT_BYTES ({limit}) "
                    "and was not kept for resumption: send the request again"
                ),
            )
            return JSONRPCError(jsonrpc="2.0", id=message.id, error=error).model_dump_json(
                by_alias=True, exclude_unset=True
            )
        return None


class UnboundEventStore(EventStore):
    """What the manager holds until a session's own store replaces it: refuses, so a change in the
    SDK that skipped the binding fails loudly instead of mixing sessions' streams."""

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        raise RuntimeError("event store used without a session binding")

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        raise RuntimeError("event store used without a session binding")


def own_event_store(service: StreamService) -> Callable[[StreamableHTTPServerTransport], None]:
    """What gives every session the manager admits its own `SessionEventStore` (http/admission.py
    calls it for each admitted transport).

    The SDK (pinned below 2.4) has no hook for this, so the new transport's store is replaced before
    it serves its first request (the store also reads which streams the transport forwards to,
    `_request_streams`); tests/e2e/test_resumable_streams.py fails if a new SDK stops honouring either.
    """

    def bind(transport: StreamableHTTPServerTransport) -> None:
        if transport.mcp_session_id is not None:
            owner = StreamOwner(fingerprint(transport.mcp_session_id), requester())
            live = transport._request_streams
            transport._event_store = SessionEventStore(service, owner, lambda stream_id: stream_id in live)

    return bind
