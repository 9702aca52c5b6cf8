"""Importing an agent's own log into a session: create it when missing, append what is new.

Entries arrive from a log reader (capture/) already typed; each carries the log's own record id,
which becomes its idempotency key, so importing a log twice, or again after it has grown, never
appends a record twice. Entries are appended in batches, each one transaction; where the log was
read up to is saved in the last batch's transaction, so it never runs ahead of what is stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from handoff.domain.models import ImportCursor
from handoff.domain.validation import validate_session_key
from handoff.errors import NotFound
from handoff.services.context import ContextService, NewContext
from handoff.services.ports import Clock, UnitOfWorkFactory
from handoff.services.sessions import SessionService

BATCH_SIZE = 500
_KEY_CHARS = re.compile(r"[^A-Za-z0-9._:@+-]+")


@dataclass(slots=True)
class ImportResult:
    session_key: str
    created: bool = False
    imported: int = 0
    already_present: int = 0
    redacted: int = 0
    batches: int = 0
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)


def session_key_for(fmt: str, log_session_id: str | None, fallback: str) -> str:
    """A valid session key derived from the log's own id (or the file name)."""
    base = _KEY_CHARS.sub("-", f"{fmt}-{log_session_id or fallback}").strip("-.")
    return base[:128] or fmt


class ImportService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, sessions: SessionService, context: ContextService) -> None:
        self._uow = uow
        self._clock = clock
        self._sessions = sessions
        self._context = context

    async def open(self, session_key: str, agent: str, metadata: dict[str, Any]) -> bool:
        """Make sure the session exists (owned by `agent` when created); True when it was created."""
        key = validate_session_key(session_key, max_length=128)
        try:
            await self._sessions.get(key)
            return False
        except NotFound:
            await self._sessions.register(key, agent, metadata, None, None)
            return True

    async def positions(self, session_key: str, fingerprints: dict[str, str]) -> dict[str, tuple[int, int]]:
        """Where each source file's previous import stopped: (byte offset, line), or (0, 0).

        A file whose first bytes changed since (rotated, replaced) starts over from the top.
        """
        found: dict[str, tuple[int, int]] = {}
        async with self._uow(write=False) as uow:
            session = await uow.sessions.get(session_key)
            for source, print_ in fingerprints.items():
                cursor = await uow.imports.find(session.id, source)
                if cursor is not None and cursor.fingerprint == print_:
                    found[source] = (cursor.byte_offset, cursor.line_count)
        return found

    async def append(
        self,
        session_key: str,
        items: Iterable[NewContext],
        *,
        key_prefix: str,
        batch_size: int = BATCH_SIZE,
        result: ImportResult | None = None,
    ) -> ImportResult:
        """Append the items in batches (idempotent); returns the running totals.

        Each item's `idempotency_key` is the log's own record id; `key_prefix` (the format) keeps ids
        of different logs apart.
        """
        result = result or ImportResult(session_key)
        for batch in _batches(items, batch_size):
            outcome = await self._context.append_batch(
                session_key,
                [replace(i, idempotency_key=f"{key_prefix}{i.idempotency_key}"[:200]) for i in batch],
            )
            result.imported += outcome.appended
            result.already_present += outcome.already_present
            result.redacted += outcome.redacted
            result.batches += 1
        return result

    async def save_positions(
        self, session_key: str, positions: dict[str, tuple[int, int]], fingerprints: dict[str, str], records: int
    ) -> None:
        """Remember where each file was read up to (after its entries were stored)."""
        async with self._uow(write=True) as uow:
            session = await uow.sessions.get(session_key)
            now = self._clock.now()
            for source, (offset, line) in positions.items():
                await uow.imports.save(
                    ImportCursor(session.id, source[:1024], fingerprints.get(source, ""), offset, line, records),
                    now=now,
                )
            await uow.commit()


def _batches(items: Iterable[NewContext], size: int) -> Iterator[list[NewContext]]:
    batch: list[NewContext] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
