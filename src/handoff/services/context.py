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
from handoff.domain.notices import Change
from handoff.domain.validation import (
    check_storable_text,
    parse_choice,
    validate_agent,
    validate_content,
    validate_metadata,
    validate_session_key,
)
from handoff.errors import Conflict, InvalidInput, InvalidState
from handoff.services.paging import check_limit, decode_cursor, encode_cursor
from handoff.services.ports import Cache, Clock, NoRedaction, NoRetry, Retrier, SecretRedactor, UnitOfWorkFactory
from handoff.services.read_cache import ReadCache
from handoff.services.transitions import expire_if_due, next_expiry, reactivate_if_dormant

MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True, slots=True)
class AppendResult:
    entry: ContextEntry
    session: Session
    replayed: bool


@dataclass(frozen=True, slots=True)
class NewContext:
    """One entry of a batch append (an import): the arguments update_context takes."""

    context_type: str
    content: str
    metadata: dict[str, Any]
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class BatchResult:
    session: Session
    appended: int
    already_present: int
    redacted: int


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
        redactor: SecretRedactor | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._limits = limits
        self._retry = retry or NoRetry()
        self._read_cache = ReadCache(cache)
        self._redactor: SecretRedactor = redactor or NoRedaction()

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
        validate_content(content, max_bytes=self._limits.max_content_bytes)
        meta = validate_metadata(metadata, max_bytes=self._limits.max_metadata_bytes)
        content, meta, _ = self._redact(content, meta)
        encoded = content.encode("utf-8")
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
                        # A replay is the same call again: same content, type, metadata and (when
                        # named) writer. Anything else reusing the key is a different entry.
                        if (
                            earlier.content_sha256 != sha256
                            or earlier.context_type is not kind
                            or earlier.metadata != meta
                            or (writer is not None and earlier.agent != writer)
                        ):
                            raise Conflict(
                                f"idempotency_key '{idempotency_key}' was already used for a different entry "
                                f"(#{earlier.sequence_number}) in session '{key}'",
                                {"sequence_number": earlier.sequence_number},
                            )
                        return AppendResult(earlier, session, replayed=True)
                if writer is None and session.shared:
                    # Others take part: an entry without a writer would be put down to the owner,
                    # whoever sent it (a former owner still writing after a full handoff, say).
                    raise InvalidInput(
                        f"agent is required: session '{key}' has participants besides its owner "
                        f"({session.owner_agent}), so say who writes",
                        {"field": "agent", "owner": session.owner_agent},
                    )
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
                uow.announce(Change.session(key))
                await uow.commit()
            return AppendResult(entry, session, replayed=False)

        # Only an append that carries an idempotency key is safe to run again: if a commit's
        # acknowledgement was lost, the retry finds the entry instead of writing it twice.
        return await (self._retry.call(attempt) if idempotency_key is not None else attempt())

    def _redact(self, content: str, meta: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
        """Secrets out before anything is stored; how many were found goes into the metadata."""
        content, found = self._redactor.redact(content)
        meta, found_in_meta = self._redactor.redact_json(meta)
        counts = {**found}
        for kind, n in found_in_meta.items():
            counts[kind] = counts.get(kind, 0) + n
        if counts:
            meta = {**meta, "redacted": counts}
        return content, meta, sum(counts.values())

    async def append_batch(self, session_key: str, items: Sequence[NewContext]) -> BatchResult:
        """Append many entries as the owner in one transaction; keys already present are skipped.

        Imports use this: one lock, one counter update and one multi-row insert per batch, so a
        log of 100,000 records imports at thousands of records a second, and a re-run (or a log
        that has grown) appends only what the session does not hold yet.
        """
        key = validate_session_key(session_key, max_length=self._limits.max_key_length)
        prepared: list[tuple[ContextType, str, dict[str, Any], str, bytes]] = []
        redacted = 0
        for index, item in enumerate(items):
            kind = parse_context_type(item.context_type)
            validate_content(item.content, max_bytes=self._limits.max_content_bytes)
            meta = validate_metadata(
                item.metadata, field=f"items[{index}].metadata", max_bytes=self._limits.max_metadata_bytes
            )
            if not 1 <= len(item.idempotency_key) <= MAX_IDEMPOTENCY_KEY:
                raise InvalidInput(f"items[{index}].idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
            content, meta, found = self._redact(item.content, meta)
            redacted += found
            prepared.append((kind, content, meta, item.idempotency_key, content.encode("utf-8")))

        async def attempt() -> BatchResult:
            async with self._uow(write=True) as uow:
                session = await uow.sessions.get(key, for_update=True, with_digest=True, with_participants=False)
                now = self._clock.now()
                if await expire_if_due(uow, session, now=now):
                    await uow.commit()
                    raise InvalidState(
                        f"session '{key}' is expired and no longer accepts writes", {"status": "expired"}
                    )
                check_writable(session, session.owner_agent)
                held = await uow.entries.existing_keys(session.id, [p[3] for p in prepared])
                fresh = [p for p in prepared if p[3] not in held]
                # A batch may repeat a record (a log that re-emits one): the first one wins.
                seen: set[str] = set()
                fresh = [p for p in fresh if not (p[3] in seen or seen.add(p[3]))]  # type: ignore[func-returns-value]
                if not fresh:
                    await uow.commit()
                    return BatchResult(session, 0, len(prepared), redacted)
                await reactivate_if_dormant(uow, session, actor=session.owner_agent, now=now)
                digest = session.digest or Digest()
                first = session.entry_count + 1
                rows = []
                for offset, (kind, content, meta, idem, encoded) in enumerate(fresh):
                    digest.absorb(
                        seq=first + offset, context_type=kind, content=content, metadata=meta, agent=session.owner_agent
                    )
                    rows.append(
                        NewEntry(
                            context_type=kind,
                            content=content,
                            metadata=meta,
                            agent=session.owner_agent,
                            content_bytes=len(encoded),
                            content_sha256=hashlib.sha256(encoded).hexdigest(),
                            idempotency_key=idem,
                        )
                    )
                last = await uow.sessions.record_append(
                    session,
                    added_bytes=sum(r.content_bytes for r in rows),
                    now=now,
                    expires_at=next_expiry(session, now),
                    digest=digest,
                    count=len(rows),
                )
                if last != first + len(rows) - 1:
                    raise Conflict("the session changed during the import; retry it")
                await uow.entries.add_many(session.id, first, rows, now=now)
                uow.announce(Change.session(key))
                await uow.commit()
            return BatchResult(session, len(rows), len(prepared) - len(rows), redacted)

        return await self._retry.call(attempt)

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
        kinds = [parse_context_type(t, field="context_types") for t in context_types] if context_types else None

        async def read() -> tuple[Session, list[ContextEntry]]:
            async with self._uow(write=False) as uow:
                session = await uow.sessions.get(key, with_digest=True)
                cached = await self._read_cache.page(session, after, limit, kinds)
                if cached is not None:
                    return session, cached
                rows = await uow.entries.list_page(
                    session.id,
                    after_sequence=after,
                    up_to=session.entry_count,
                    limit=limit + 1,
                    context_types=kinds,
                    max_bytes=self._limits.max_page_bytes,
                )
            await self._read_cache.remember_page(session, after, limit, kinds, rows)
            return session, rows

        session, fetched = await self._retry.call(read)
        digest = session.digest or Digest()
        rows = fit_page(fetched, limit, self._limits.max_page_bytes)
        more = len(rows) < len(fetched)
        next_cursor = encode_cursor("c", rows[-1].sequence_number) if more and rows else None
        return ContextPage(session, rows, next_cursor, dict(digest.counts))


def fit_page(rows: Sequence[ContextEntry], limit: int, max_bytes: int) -> list[ContextEntry]:
    """The page: at most `limit` entries and `max_bytes` of content, but never empty while there are
    rows (a single entry larger than the byte limit comes alone, or it could never be read)."""
    page: list[ContextEntry] = []
    carried = 0
    for row in rows[:limit]:
        if page and carried + row.content_bytes > max_bytes:
            break
        page.append(row)
        carried += row.content_bytes
    return page


def parse_context_type(value: str, *, field: str = "context_type") -> ContextType:
    return parse_choice(ContextType, value, field=field)
