"""Read-through caching of what is expensive to read and cheap to key exactly.

Nothing here can serve stale data: every key names the exact version of what it caches.
- A page of context is keyed by the session's identity (key + creation time, so a purged and
  re-registered key never collides) and its entry count as read in the same transaction, and it
  only ever holds entries up to that count. Entries never change once written, so a page keyed
  this way is true forever; an append changes the count and therefore the key.
- A handoff's brief, instructions and the rest of what it was made with never change after it is
  written; that is all the cache holds of it. Its progress (status, answers) changes, so it is
  never cached: every read takes it from the database.
The cache is never a source of truth: a miss, an error or a flushed cache only costs a DB read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from handoff.domain.models import ContextEntry, ContextType, Handoff, HandoffType, ParticipantRole, Session
from handoff.services.ports import Cache

PAGE_TTL_SECONDS = 600.0
HANDOFF_TTL_SECONDS = 3600.0
MAX_VALUE_BYTES = 1024 * 1024  # big pages are cheaper to read from the DB than to ship through a cache


class ReadCache:
    def __init__(self, cache: Cache | None) -> None:
        self._cache = cache

    async def page(
        self, session: Session, after: int, limit: int, kinds: Sequence[ContextType] | None
    ) -> list[ContextEntry] | None:
        if self._cache is None:
            return None
        raw = await self._cache.get(_page_key(session, after, limit, kinds))
        return None if raw is None else [_entry_from(d, session.id) for d in json.loads(raw)]

    async def remember_page(
        self,
        session: Session,
        after: int,
        limit: int,
        kinds: Sequence[ContextType] | None,
        rows: Sequence[ContextEntry],
    ) -> None:
        if self._cache is None:
            return
        raw = json.dumps([_entry_to(e) for e in rows], ensure_ascii=False).encode()
        if len(raw) <= MAX_VALUE_BYTES:
            await self._cache.set(_page_key(session, after, limit, kinds), raw, PAGE_TTL_SECONDS)

    async def handoff(self, handoff_id: str) -> Handoff | None:
        """The handoff as it was made; its `progress` is the default one: read the real one from the database."""
        if self._cache is None:
            return None
        raw = await self._cache.get(f"handoff:v2:{handoff_id}")
        return None if raw is None else _handoff_from(json.loads(raw))

    async def remember_handoff(self, handoff: Handoff) -> None:
        if self._cache is None:
            return
        raw = json.dumps(_handoff_to(handoff), ensure_ascii=False).encode()
        if len(raw) <= MAX_VALUE_BYTES:
            await self._cache.set(f"handoff:v2:{handoff.handoff_id}", raw, HANDOFF_TTL_SECONDS)


def _page_key(session: Session, after: int, limit: int, kinds: Sequence[ContextType] | None) -> str:
    types = ",".join(sorted(k.value for k in kinds)) if kinds else "*"
    born = int(session.created_at.timestamp() * 1_000_000)
    return f"page:v1:{session.session_key}:{born}:{session.entry_count}:{after}:{limit}:{types}"


def _entry_to(entry: ContextEntry) -> dict[str, Any]:
    return {
        "seq": entry.sequence_number,
        "type": entry.context_type.value,
        "content": entry.content,
        "meta": entry.metadata,
        "agent": entry.agent,
        "at": entry.created_at.isoformat(),
        "bytes": entry.content_bytes,
        "sha": entry.content_sha256,
        "key": entry.idempotency_key,
    }


def _entry_from(data: dict[str, Any], session_id: int) -> ContextEntry:
    return ContextEntry(
        session_id=session_id,
        sequence_number=data["seq"],
        context_type=ContextType(data["type"]),
        content=data["content"],
        metadata=data["meta"],
        agent=data["agent"],
        created_at=datetime.fromisoformat(data["at"]),
        content_bytes=data["bytes"],
        content_sha256=data["sha"],
        idempotency_key=data["key"],
    )


def _handoff_to(h: Handoff) -> dict[str, Any]:
    return {
        "handoff_id": h.handoff_id,
        "session_id": h.session_id,
        "session_key": h.session_key,
        "source_agent": h.source_agent,
        "target_agent": h.target_agent,
        "handoff_type": h.handoff_type.value,
        "request_data": h.request_data,
        "note": h.note,
        "brief": h.brief,
        "summary": h.summary,
        "instructions": h.instructions,
        "token_budget": h.token_budget,
        "brief_tokens": h.brief_tokens,
        "up_to_sequence": h.up_to_sequence,
        "created_at": h.created_at.isoformat(),
        "target_prior_role": h.target_prior_role.value if h.target_prior_role else None,
    }


def _handoff_from(data: dict[str, Any]) -> Handoff:
    return Handoff(
        **{
            **data,
            "handoff_type": HandoffType(data["handoff_type"]),
            "created_at": datetime.fromisoformat(data["created_at"]),
            "target_prior_role": ParticipantRole(data["target_prior_role"]) if data["target_prior_role"] else None,
        }
    )
