"""What changed, as told to subscribers: a level trigger ("read it again"), never the data itself.

A change names a topic and a key: a session (its entries, status, owner or participants), a
handoff (its status and answers), an agent's inbox (a handoff addressed to it was made or
answered), or the set of live sessions (one appeared). Notices travel between replicas (PostgreSQL
NOTIFY, Redis pub/sub), so they have a compact text form; anything that does not decode is dropped
by the receiver, not trusted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

_COMPACT = (",", ":")  # the sizes below count exactly these separators


class Topic(StrEnum):
    SESSION = "session"
    HANDOFF = "handoff"
    INBOX = "inbox"
    SESSIONS = "sessions"  # the set of live sessions; no key


@dataclass(frozen=True, slots=True)
class Change:
    topic: Topic
    key: str = ""

    @classmethod
    def session(cls, session_key: str) -> Change:
        return cls(Topic.SESSION, session_key)

    @classmethod
    def handoff(cls, handoff_id: str) -> Change:
        return cls(Topic.HANDOFF, handoff_id)

    @classmethod
    def inbox(cls, agent: str) -> Change:
        return cls(Topic.INBOX, agent)

    @classmethod
    def sessions(cls) -> Change:
        return cls(Topic.SESSIONS)


def encode(changes: Iterable[Change], *, max_bytes: int) -> list[str]:
    """The changes as JSON texts of at most `max_bytes` each (PostgreSQL caps a NOTIFY payload),
    duplicates left out. A single change larger than the cap (a key longer than any we accept) is
    dropped: a notice is a hint, and the data is still there to read."""
    texts: list[str] = []
    batch: list[list[str]] = []
    size = 2
    for change in dict.fromkeys(changes):
        item = [change.topic.value, change.key]
        cost = len(json.dumps(item, ensure_ascii=False, separators=_COMPACT).encode()) + 1
        if cost + 2 > max_bytes:
            continue
        if batch and size + cost > max_bytes:
            texts.append(json.dumps(batch, ensure_ascii=False, separators=_COMPACT))
            batch, size = [], 2
        batch.append(item)
        size += cost
    if batch:
        texts.append(json.dumps(batch, ensure_ascii=False, separators=_COMPACT))
    return texts


def decode(text: str | bytes) -> Sequence[Change]:
    """The changes in one text from `encode`; whatever does not parse as one is skipped."""
    try:
        items = json.loads(text)
    except ValueError:
        return ()
    if not isinstance(items, list):
        return ()
    found: list[Change] = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)):
            continue
        try:
            topic = Topic(item[0])
        except ValueError:
            continue
        found.append(Change(topic, item[1]))
    return found
