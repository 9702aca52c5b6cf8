"""In-memory implementations of the service ports, for unit tests of the use cases.

The store keeps committed state. A unit of work copies that state when it begins, works on the
copy, and publishes it back only on `commit()`; leaving the block without committing discards
everything, like a rolled-back transaction. Objects handed out are copies, so a service that
mutates a `Session` it was given changes nothing stored unless it goes through a repository.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from handoff.config import Settings
from handoff.domain.digest import Digest
from handoff.domain.models import (
    ContextEntry,
    ContextType,
    EntryExcerpt,
    Handoff,
    HandoffHeader,
    HandoffProgress,
    HandoffStatus,
    HandoffType,
    ImportCursor,
    LifecycleEvent,
    NewEntry,
    Participant,
    ParticipantRole,
    Session,
    SessionStatus,
)
from handoff.domain.notices import Change
from handoff.errors import AlreadyExists, NotFound
from handoff.services.context import ContextService
from handoff.services.handoffs import HandoffService
from handoff.services.sessions import SessionService

EPOCH = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = EPOCH) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


@dataclass
class State:
    """Everything a database would hold."""

    sessions: dict[int, Session] = field(default_factory=dict)
    digests: dict[int, str] = field(default_factory=dict)
    entries: dict[int, list[ContextEntry]] = field(default_factory=dict)
    handoffs: dict[str, Handoff] = field(default_factory=dict)
    events: list[LifecycleEvent] = field(default_factory=list)
    imports: dict[tuple[int, str], ImportCursor] = field(default_factory=dict)
    next_session_id: int = 1


class FakeSessionRepository:
    def __init__(self, state: State) -> None:
        self._state = state

    async def add(
        self,
        *,
        session_key: str,
        source_agent: str,
        metadata: dict[str, Any],
        ttl_seconds: int,
        now: datetime,
        expires_at: datetime,
        retention_policy: str = "standard",
    ) -> Session:
        if any(s.session_key == session_key for s in self._state.sessions.values()):
            raise AlreadyExists(f"session '{session_key}' already exists")
        session_id = self._state.next_session_id
        self._state.next_session_id += 1
        self._state.sessions[session_id] = Session(
            id=session_id,
            session_key=session_key,
            source_agent=source_agent,
            owner_agent=source_agent,
            status=SessionStatus.ACTIVE,
            metadata=copy.deepcopy(metadata),
            created_at=now,
            updated_at=now,
            last_activity_at=now,
            expires_at=expires_at,
            ttl_seconds=ttl_seconds,
            entry_count=0,
            content_bytes=0,
            participants=[],
            retention_policy=retention_policy,
            status_changed_at=now,
        )
        self._state.digests[session_id] = "{}"
        self._state.entries[session_id] = []
        return copy.deepcopy(self._state.sessions[session_id])

    async def get(
        self, session_key: str, *, for_update: bool = False, with_digest: bool = False, with_participants: bool = True
    ) -> Session:
        session = await self.find(
            session_key, for_update=for_update, with_digest=with_digest, with_participants=with_participants
        )
        if session is None:
            raise NotFound(f"no session with key '{session_key}'", {"session_key": session_key})
        return session

    async def find(
        self, session_key: str, *, for_update: bool = False, with_digest: bool = False, with_participants: bool = True
    ) -> Session | None:
        for session in self._state.sessions.values():
            if session.session_key == session_key:
                found = copy.deepcopy(session)
                found.participants = found.participants if with_participants else None
                found.digest = Digest.from_json(self._state.digests[session.id]) if with_digest else None
                return found
        return None

    async def load_participants(self, session: Session) -> None:
        session.participants = copy.deepcopy(self._state.sessions[session.id].participants)

    async def find_by_id(self, session_id: int) -> Session | None:
        found = self._state.sessions.get(session_id)
        return None if found is None else copy.deepcopy(found)

    async def list_sessions(
        self,
        *,
        statuses: Sequence[SessionStatus] | None,
        agent: str | None,
        after_id: int | None,
        limit: int,
    ) -> list[Session]:
        rows = sorted(self._state.sessions.values(), key=lambda s: s.id)
        if statuses:
            rows = [s for s in rows if s.status in statuses]
        if agent is not None:
            rows = [s for s in rows if any(p.agent == agent for p in s.participants or [])]
        if after_id is not None:
            rows = [s for s in rows if s.id > after_id]
        return [copy.deepcopy(s) for s in rows[:limit]]

    async def record_append(
        self, session: Session, *, added_bytes: int, now: datetime, expires_at: datetime, digest: Digest, count: int = 1
    ) -> int:
        stored = self._state.sessions[session.id]
        self._state.digests[session.id] = digest.to_json()
        session.digest = digest
        stored.entry_count += count
        stored.content_bytes += added_bytes
        stored.last_activity_at = stored.updated_at = now
        stored.expires_at = expires_at
        session.entry_count = stored.entry_count
        session.content_bytes = stored.content_bytes
        session.last_activity_at = session.updated_at = now
        session.expires_at = expires_at
        return stored.entry_count

    async def set_status(self, session: Session, status: SessionStatus, *, now: datetime) -> None:
        stored = self._state.sessions[session.id]
        stored.status = session.status = status
        stored.updated_at = session.updated_at = now
        stored.status_changed_at = session.status_changed_at = now

    async def set_retention(self, session: Session, policy: str, *, now: datetime) -> None:
        stored = self._state.sessions[session.id]
        stored.retention_policy = session.retention_policy = policy
        stored.updated_at = session.updated_at = now

    async def touch(self, session: Session, *, now: datetime, expires_at: datetime) -> None:
        stored = self._state.sessions[session.id]
        stored.last_activity_at = stored.updated_at = now
        stored.expires_at = expires_at
        session.last_activity_at = session.updated_at = now
        session.expires_at = expires_at

    async def set_owner(self, session: Session, owner_agent: str, *, now: datetime) -> None:
        stored = self._state.sessions[session.id]
        stored.owner_agent = session.owner_agent = owner_agent
        stored.updated_at = now

    async def set_participant(self, session: Session, agent: str, role: ParticipantRole, *, now: datetime) -> None:
        stored = self._state.sessions[session.id]
        if session.participants is None:
            await self.load_participants(session)
        for target in (stored, session):
            current = target.participants or []
            joined = next((p.joined_at for p in current if p.agent == agent), now)
            target.participants = [
                *(p for p in current if p.agent != agent),
                Participant(agent=agent, role=role, joined_at=joined),
            ]


class FakeEntryRepository:
    def __init__(self, state: State) -> None:
        self._state = state

    async def add_many(
        self, session_id: int, first_sequence: int, entries: Sequence[NewEntry], *, now: datetime
    ) -> None:
        for offset, entry in enumerate(entries):
            await self.add(session_id, first_sequence + offset, entry, now=now)

    async def existing_keys(self, session_id: int, keys: Sequence[str]) -> set[str]:
        held = {r.idempotency_key for r in self._state.entries.get(session_id, [])}
        return {k for k in keys if k in held}

    async def add(self, session_id: int, sequence_number: int, entry: NewEntry, *, now: datetime) -> ContextEntry:
        rows = self._state.entries[session_id]
        if any(r.sequence_number == sequence_number for r in rows):
            raise AssertionError(f"UNIQUE(session_id, sequence_number) violated: {session_id}/{sequence_number}")
        if entry.idempotency_key is not None and any(r.idempotency_key == entry.idempotency_key for r in rows):
            raise AssertionError(f"UNIQUE(session_id, idempotency_key) violated: {entry.idempotency_key}")
        stored = ContextEntry(
            session_id=session_id,
            sequence_number=sequence_number,
            context_type=entry.context_type,
            content=entry.content,
            metadata=copy.deepcopy(entry.metadata),
            agent=entry.agent,
            created_at=now,
            content_bytes=entry.content_bytes,
            content_sha256=entry.content_sha256,
            idempotency_key=entry.idempotency_key,
        )
        rows.append(stored)
        return replace(stored, metadata=copy.deepcopy(stored.metadata))

    async def find_by_idempotency_key(self, session_id: int, key: str) -> ContextEntry | None:
        for row in self._state.entries.get(session_id, []):
            if row.idempotency_key == key:
                return row
        return None

    async def list_page(
        self,
        session_id: int,
        *,
        after_sequence: int,
        up_to: int,
        limit: int,
        context_types: Sequence[ContextType] | None,
        max_bytes: int,
    ) -> list[ContextEntry]:
        rows = sorted(self._state.entries.get(session_id, []), key=lambda e: e.sequence_number)
        rows = [r for r in rows if after_sequence < r.sequence_number <= up_to]
        if context_types:
            rows = [r for r in rows if r.context_type in context_types]
        page: list[ContextEntry] = []
        before_previous = 0  # content of the entries before the previous one
        for index, row in enumerate(rows[:limit]):
            if index >= 2:
                before_previous += rows[index - 2].content_bytes
            if before_previous >= max_bytes:
                break
            page.append(row)
        return page

    async def list_tail(self, session_id: int, *, up_to: int, limit: int, excerpt_chars: int) -> list[EntryExcerpt]:
        rows = sorted(self._state.entries.get(session_id, []), key=lambda e: -e.sequence_number)
        rows = [r for r in rows if r.sequence_number <= up_to][:limit]
        return [EntryExcerpt.of(r, excerpt_chars) for r in rows]


class FakeHandoffRepository:
    def __init__(self, state: State) -> None:
        self._state = state

    async def add(self, handoff: Handoff) -> None:
        if handoff.handoff_id in self._state.handoffs:
            raise AssertionError(f"duplicate handoff id {handoff.handoff_id}")
        self._state.handoffs[handoff.handoff_id] = handoff

    async def get(self, handoff_id: str) -> Handoff:
        found = self._state.handoffs.get(handoff_id)
        if found is None:
            raise NotFound(f"no handoff with id '{handoff_id}'", {"handoff_id": handoff_id})
        return found

    async def list_for_session(self, session_id: int, *, limit: int) -> list[Handoff]:
        rows = [h for h in self._state.handoffs.values() if h.session_id == session_id]
        return sorted(rows, key=lambda h: h.created_at)[:limit]

    async def find_progress(self, handoff_id: str) -> HandoffProgress | None:
        found = self._state.handoffs.get(handoff_id)
        return None if found is None else found.progress

    async def set_progress(self, handoff_id: str, *, expected: HandoffStatus, progress: HandoffProgress) -> bool:
        found = self._state.handoffs.get(handoff_id)
        if found is None or found.status is not expected:
            return False
        self._state.handoffs[handoff_id] = replace(found, progress=progress)
        return True

    async def list_page(
        self,
        *,
        target_agent: str | None,
        source_agent: str | None,
        status: HandoffStatus | None,
        session_id: int | None,
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[HandoffHeader]:
        rows = [
            h
            for h in self._state.handoffs.values()
            if target_agent in (None, h.target_agent)
            and source_agent in (None, h.source_agent)
            and status in (None, h.status)
            and session_id in (None, h.session_id)
            and (before is None or (h.created_at, h.handoff_id) < before)
        ]
        rows.sort(key=lambda h: (h.created_at, h.handoff_id), reverse=True)
        return [
            HandoffHeader(
                handoff_id=h.handoff_id,
                session_key=h.session_key,
                source_agent=h.source_agent,
                target_agent=h.target_agent,
                handoff_type=h.handoff_type,
                summary=h.summary,
                created_at=h.created_at,
                progress=h.progress,
            )
            for h in rows[:limit]
        ]

    async def pending_created_before(self, cutoff: datetime, *, limit: int) -> list[str]:
        rows = [
            h for h in self._state.handoffs.values() if h.status is HandoffStatus.PENDING and h.created_at <= cutoff
        ]
        return [h.handoff_id for h in sorted(rows, key=lambda h: (h.created_at, h.handoff_id))[:limit]]

    async def count_by_type_and_status(self) -> dict[tuple[HandoffType, HandoffStatus], int]:
        counts: dict[tuple[HandoffType, HandoffStatus], int] = {}
        for h in self._state.handoffs.values():
            counts[(h.handoff_type, h.status)] = counts.get((h.handoff_type, h.status), 0) + 1
        return counts

    async def session_keys_starting(self, prefix: str, *, limit: int) -> list[str]:
        return sorted(s.session_key for s in self._state.sessions.values() if s.session_key.startswith(prefix))[:limit]

    async def agents_starting(self, prefix: str, *, limit: int) -> list[str]:
        agents = {p.agent for s in self._state.sessions.values() for p in s.participants or []}
        return sorted(a for a in agents if a.startswith(prefix))[:limit]

    async def handoff_ids_starting(self, prefix: str, *, pending_for: str | None, limit: int) -> list[str]:
        rows = [h for h in self._state.handoffs.values() if h.handoff_id.startswith(prefix)]
        if pending_for is None:
            return sorted(h.handoff_id for h in rows)[:limit]
        rows = [h for h in rows if h.target_agent == pending_for and h.status is HandoffStatus.PENDING]
        return [h.handoff_id for h in sorted(rows, key=lambda h: (h.created_at, h.handoff_id), reverse=True)][:limit]


class FakeEventRepository:
    def __init__(self, state: State) -> None:
        self._state = state

    async def add(self, event: LifecycleEvent) -> None:
        self._state.events.append(event)

    async def list_for_session(self, session_id: int, *, limit: int) -> list[LifecycleEvent]:
        return [e for e in self._state.events if e.session_id == session_id][:limit]


class FakeImportRepository:
    def __init__(self, state: State) -> None:
        self._state = state

    async def find(self, session_id: int, source: str) -> ImportCursor | None:
        return self._state.imports.get((session_id, source))

    async def save(self, cursor: ImportCursor, *, now: datetime) -> None:
        self._state.imports[(cursor.session_id, cursor.source)] = cursor


class FakeUnitOfWork:
    sessions: FakeSessionRepository
    entries: FakeEntryRepository
    handoffs: FakeHandoffRepository
    events: FakeEventRepository

    def __init__(self, factory: FakeUnitOfWorkFactory, *, write: bool) -> None:
        self._factory = factory
        self.write = write
        self._working: State | None = None
        self.committed = False
        self._changes: list[Change] = []

    def announce(self, change: Change) -> None:
        self._changes.append(change)

    async def __aenter__(self) -> Self:
        if self._working is not None:
            raise AssertionError("a unit of work is entered once")
        self._working = copy.deepcopy(self._factory.state)
        self.sessions = FakeSessionRepository(self._working)
        self.entries = FakeEntryRepository(self._working)
        self.handoffs = FakeHandoffRepository(self._working)
        self.events = FakeEventRepository(self._working)
        self.imports = FakeImportRepository(self._working)
        return self

    async def commit(self) -> None:
        if self._working is None:
            raise AssertionError("commit outside the block")
        if not self.write:
            raise AssertionError("a read unit of work must not commit")
        self._factory.state = copy.deepcopy(self._working)
        self._factory.commits += 1
        self._factory.announced.extend(self._changes)
        self.committed = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            self._factory.rollbacks += 1
        self._working = None


class FakeUnitOfWorkFactory:
    """The in-memory database: `state` is what has been committed."""

    def __init__(self) -> None:
        self.state = State()
        self.commits = 0
        self.rollbacks = 0
        self.opened: list[FakeUnitOfWork] = []
        self.announced: list[Change] = []  # what committed units told subscribers, in order

    def __call__(self, *, write: bool, durable: bool = True) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(self, write=write)
        self.opened.append(uow)
        return uow

    # -- test conveniences (what a test would otherwise do with SQL) --------------------------
    def session(self, session_key: str) -> Session:
        for session in self.state.sessions.values():
            if session.session_key == session_key:
                return copy.deepcopy(session)
        raise KeyError(session_key)

    def entries_of(self, session_key: str) -> list[ContextEntry]:
        return list(self.state.entries[self.session(session_key).id])

    def events_of(self, session_key: str) -> list[LifecycleEvent]:
        session_id = self.session(session_key).id
        return [e for e in self.state.events if e.session_id == session_id]

    async def set_status(self, session_key: str, status: SessionStatus, now: datetime) -> None:
        """Force a status through the repository, the way a lifecycle job would."""
        async with self(write=True) as uow:
            session = await uow.sessions.get(session_key, for_update=True)
            await uow.sessions.set_status(session, status, now=now)
            await uow.commit()


@dataclass
class Services:
    uow: FakeUnitOfWorkFactory
    clock: FakeClock
    settings: Settings
    sessions: SessionService
    context: ContextService
    handoffs: HandoffService


def build_services(settings: Settings | None = None, clock: FakeClock | None = None) -> Services:
    """Wire the services exactly as `Container.build` does, on the in-memory ports."""
    settings = settings or Settings()
    clock = clock or FakeClock()
    uow = FakeUnitOfWorkFactory()
    return Services(
        uow=uow,
        clock=clock,
        settings=settings,
        sessions=SessionService(uow, clock, settings.limits, settings.lifecycle),
        context=ContextService(uow, clock, settings.limits),
        handoffs=HandoffService(uow, clock, settings.limits, settings.brief, lifecycle=settings.lifecycle),
    )
