"""Resumable streams: who may replay a stream, and the event ids a client sees.

An event id is `<stream key>.<n>`: the stream key is 144 random bits minted when the stream starts,
which is what makes an id unguessable, and `n` numbers the stream's events from 0 (the priming
event that marks its start). Only the replica holding the MCP session writes its streams, so it
numbers them itself and an id is known before the event is stored. Neither part is trusted alone:
a replay also has to come from the MCP session that wrote the stream and, with authentication, the
same agent.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

_EVENT_ID = re.compile(r"^([A-Za-z0-9_-]{24})\.(0|[1-9][0-9]{0,18})$")


def new_stream_key() -> str:
    return secrets.token_urlsafe(18)  # 24 characters of [A-Za-z0-9_-]


def format_event_id(stream_key: str, seq: int) -> str:
    return f"{stream_key}.{seq}"


def parse_event_id(text: str) -> tuple[str, int] | None:
    """(stream key, number) of an id we minted; None for anything else (a forged or foreign id)."""
    match = _EVENT_ID.fullmatch(text.strip())
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def fingerprint(session_id: str) -> str:
    """What is stored of an MCP session id: a leaked database must not hand out live session ids."""
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StreamOwner:
    """The MCP session (by fingerprint) and authenticated agent (None without authentication)
    a stream belongs to; only the same pair may replay it."""

    session: str
    agent: str | None


@dataclass(frozen=True, slots=True)
class NewStreamEvent:
    owner: StreamOwner
    stream_key: str
    stream_id: str  # the transport's name for the stream (a request id, or its GET stream)
    seq: int
    payload: str | None  # the JSON-RPC message as JSON; None for a priming event

    @property
    def size(self) -> int:
        return 0 if self.payload is None else len(self.payload.encode())


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_id: str
    payload: str | None  # the JSON-RPC message as JSON; None for a priming event (nothing to replay)


@dataclass(frozen=True, slots=True)
class StreamPosition:
    stream_id: str  # the transport's name for the stream (a request id, or its GET stream)
    stream_key: str
    after_id: int

    @property
    def event_id(self) -> str:
        return format_event_id(self.stream_key, self.after_id)
