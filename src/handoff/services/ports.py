"""The interfaces services depend on; storage adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from handoff.domain.digest import Digest
from handoff.domain.models import (
    ContextEntry,
    ContextType,
    Handoff,
    LifecycleEvent,
    NewEntry,
    ParticipantRole,
    Session,
    SessionStatus,
)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SessionRepository(Protocol):
    async def add(
        self,
        *,
        session_key: str,
        source_agent: str,
        metadata: dict[str, Any],
        ttl_seconds: int,
        now: datetime,
        expires_at: datetime,
    ) -> Session: ...

    async def get(
        self, session_key: str, *, for_update: bool = False, with_digest: bool = False, with_participants: bool = True
    ) -> Session:
        """Raise NotFound when there is no such session. `for_update` locks the row until commit."""

    async def find(
        self, session_key: str, *, for_update: bool = False, with_digest: bool = False, with_participants: bool = True
    ) -> Session | None: ...

    async def find_by_id(self, session_id: int) -> Session | None: ...

    async def load_participants(self, session: Session) -> None: ...

    async def list_sessions(
        self,
        *,
        statuses: Sequence[SessionStatus] | None,
        agent: str | None,
        after_id: int | None,
        limit: int,
    ) -> list[Session]: ...

    async def record_append(
        self, session: Session, *, added_bytes: int, now: datetime, expires_at: datetime, digest: Digest
    ) -> int:
        """Bump the entry counter and activity, store the digest; return the new sequence number."""

    async def set_status(self, session: Session, status: SessionStatus, *, now: datetime) -> None: ...

    async def touch(self, session: Session, *, now: datetime, expires_at: datetime) -> None: ...

    async def set_owner(self, session: Session, owner_agent: str, *, now: datetime) -> None: ...

    async def set_participant(self, session: Session, agent: str, role: ParticipantRole, *, now: datetime) -> None: ...


class EntryRepository(Protocol):
    async def add(self, session_id: int, sequence_number: int, entry: NewEntry, *, now: datetime) -> ContextEntry: ...

    async def find_by_idempotency_key(self, session_id: int, key: str) -> ContextEntry | None: ...

    async def list_page(
        self,
        session_id: int,
        *,
        after_sequence: int,
        limit: int,
        context_types: Sequence[ContextType] | None,
    ) -> list[ContextEntry]: ...


class HandoffRepository(Protocol):
    async def add(self, handoff: Handoff) -> None: ...

    async def get(self, handoff_id: str) -> Handoff:
        """Raise NotFound when there is no such handoff."""

    async def list_for_session(self, session_id: int, *, limit: int) -> list[Handoff]: ...


class EventRepository(Protocol):
    async def add(self, event: LifecycleEvent) -> None: ...

    async def list_for_session(self, session_id: int, *, limit: int) -> list[LifecycleEvent]: ...


class UnitOfWork(Protocol):
    """One transaction. Leaving the block without `commit()` rolls everything back."""

    sessions: SessionRepository
    entries: EntryRepository
    handoffs: HandoffRepository
    events: EventRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool) -> UnitOfWork:
        """A read unit sees one snapshot; a write unit holds the write lock from its start."""
