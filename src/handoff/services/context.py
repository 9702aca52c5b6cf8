"""Appending to and paging through a session's context."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from handoff.config import LimitSettings
from handoff.domain.digest import Digest
from handoff.domain.lifecycle import check_writable
from handoff.domain.models import ContextEntry, ContextType, NewEntry, Session
from handoff.domain.validation import (
    check_storable_text,
    validate_agent,
    validate_content,
    validate_metadata,
    validate_session_key,
)
from handoff.errors import Conflict, InvalidInput, InvalidState
from handoff.services.paging import check_limit, decode_cursor, encode_cursor
from handoff.services.ports import Cache, Clock, NoRetry, Retrier, UnitOfWorkFactory
from handoff.services.read_cache import ReadCache
from handoff.services.transitions import expire_if_due, next_expiry, reactivate_if_dormant

MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True, slots=True)
class AppendResult:
    entry: ContextEntry
    session: Session
    replayed: bool


@dataclass(frozen=True, slots=True)
class ContextPage:
    session: Session
    entries: list[ContextEntry]
    next_cursor: str | None
    counts_by_type: dict[str, int]


class ContextService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        limits: LimitSettings,
        retry: Retrier | None = None,
        cache: Cache | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._limits = limits
        self._retry = retry or NoRetry()
        self._read_cache = ReadCache(cache)

    async def append(
        self,
        session_key: str,
        context_type: str,
        content: str,
        metadata: Any,
        agent: str | None,
        idempotency_key: str | None,
    ) -> AppendResult:
        key = validate_session_key(session_key, max_length=self._limits.max_key_length)
        kind = parse_context_type(context_type)
        encoded = validate_content(content, max_bytes=self._limits.max_content_bytes)
        meta = validate_metadata(metadata, max_bytes=self._limits.max_metadata_bytes)
        writer = None if agent is None else validate_agent(agent, field="agent", max_length=self._limits.max_key_length)
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
                raise InvalidInput(
                    f"idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
                    {"field": "idempotency_key"},
                )
            check_storable_text(idempotency_key, field="idempotency_key")
        sha256 = hashlib.sha256(encoded).hexdigest()

        async def attempt() -> AppendResult:
            async with self._uow(write=True) as uow:
                # The row lock (a no-op under SQLite's BEGIN IMMEDIATE) serialises appends per session.
                session = await uow.sessions.get(key, for_update=True, with_digest=True, with_participants=False)
                if idempotency_key is not None:
                    earlier = await uow.entries.find_by_idempotency_key(session.id, idempotency_key)
                    if earlier is not None:
                        if earlier.content_sha256 != sha256 or earlier.context_type is not kind:
                            raise Conflict(
                                f"idempotency_key '{idempotency_key}' was already used for a different entry "
                                f"(#{earlier.sequence_number}) in session '{key}'",
                                {"sequence_number": earlier.sequence_number},
                            )
                        return AppendResult(earlier, session, replayed=True)
                actor = writer or session.owner_agent
                now = self._clock.now()
                if await expire_if_due(uow, session, now=now):
                    await uow.commit()
                    raise InvalidState(
                        f"session '{key}' is expired and no longer accepts writes",
                        {"session_key": key, "status": "expired"},
                    )
                if actor != session.owner_agent:
                    await uow.sessions.load_participants(session)
                check_writable(session, actor)
                await reactivate_if_dormant(uow, session, actor=actor, now=now)
                # We hold the session row's lock, so the next number is ours; the UPDATE below bumps
                # the counter and UNIQUE(session_id, sequence_number) backs it up.
                sequence = session.entry_count + 1
                digest = session.digest or Digest()
                digest.absorb(seq=sequence, context_type=kind, content=content, metadata=meta, agent=actor)
                recorded = await uow.sessions.record_append(
                    session, added_bytes=len(encoded), now=now, expires_at=next_expiry(session, now), digest=digest
                )
                if recorded != sequence:
                    raise Conflict("the session changed during the append; retry it")
                entry = await uow.entries.add(
                    session.id,
                    sequence,
                    NewEntry(
                        context_type=kind,
                        content=content,
                        metadata=meta,
                        agent=actor,
                        content_bytes=len(encoded),
                        content_sha256=sha256,
                        idempotency_key=idempotency_key,
                    ),
                    now=now,
                )
                await uow.commit()
            return AppendResult(entry, session, replayed=False)

        # Only an append that carries an idempotency key is safe to run again: if a commit's
        # acknowledgement was lost, the retry finds the entry instead of writing it twice.
        return await (self._retry.call(attempt) if idempotency_key is not None else attempt())

    async def page(
        self,
        session_key: str,
        *,
        cursor: str | None,
        limit: int,
        context_types: Sequence[str] | None,
    ) -> ContextPage:
        key = validate_session_key(session_key, max_length=self._limits.max_key_length)
        limit = check_limit(limit, self._limits.max_page_size)
        after = decode_cursor(cursor, prefix="c") if cursor else 0
        kinds = [parse_context_type(t) for t in context_types] if context_types else None

        async def read() -> tuple[Session, list[ContextEntry]]:
            async with self._uow(write=False) as uow:
                session = await uow.sessions.get(key, with_digest=True)
                cached = await self._read_cache.page(session, after, limit, kinds)
                if cached is not None:
                    return session, cached
                rows = await uow.entries.list_page(
                    session.id, after_sequence=after, up_to=session.entry_count, limit=limit + 1, context_types=kinds
                )
            await self._read_cache.remember_page(session, after, limit, kinds, rows)
            return session, rows

        session, rows = await self._retry.call(read)
        digest = session.digest or Digest()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor("c", rows[-1].sequence_number) if more and rows else None
        return ContextPage(session, rows, next_cursor, dict(digest.counts))


def parse_context_type(value: str) -> ContextType:
    try:
        return ContextType(value)
    except ValueError:
        allowed = ", ".join(t.value for t in ContextType)
        raise InvalidInput(f"context_type must be one of {allowed}; got {value!r}", {"field": "context_type"}) from None
