"""The interfaces services depend on; storage adapters implement them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

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
    ParticipantRole,
    Session,
    SessionStatus,
)
from handoff.domain.notices import Change
from handoff.domain.search import SearchHit, SearchQuery
from handoff.domain.streams import NewStreamEvent, StreamOwner
from handoff.domain.tokens import ApiToken


class Clock(Protocol):
    def now(self) -> datetime: ...


T = TypeVar("T")


class Retrier(Protocol):
    """Runs an idempotent operation again when it fails transiently (see handoff.resilience)."""

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T: ...


class JobLock(Protocol):
    """One runner at a time for a named background job, across every replica on the database."""

    def hold(self, name: str) -> AbstractAsyncContextManager[bool]:
        """Yield True when this process may run `name` now, False when another holder has it."""
        ...


class NoRetry:
    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await fn()


class SecretRedactor(Protocol):
    """Replaces secrets in what callers send before it is stored, cached or logged."""

    def redact(self, text: str) -> tuple[str, Mapping[str, int]]: ...

    def redact_json(self, value: Any) -> tuple[Any, Mapping[str, int]]: ...


class NoRedaction:
    def redact(self, text: str) -> tuple[str, Mapping[str, int]]:
        return text, {}

    def redact_json(self, value: Any) -> tuple[Any, Mapping[str, int]]:
        return value, {}


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
        retention_policy: str = "standard",
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
        self, session: Session, *, added_bytes: int, now: datetime, expires_at: datetime, digest: Digest, count: int = 1
    ) -> int:
        """Bump the entry counter and activity, store the digest; return the new sequence number."""

    async def set_status(self, session: Session, status: SessionStatus, *, now: datetime) -> None: ...

    async def count_by_status(self) -> dict[SessionStatus, int]:
        """How many sessions are in each state (states with none are left out)."""
        ...

    async def set_retention(self, session: Session, policy: str, *, now: datetime) -> None: ...

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
        up_to: int,
        limit: int,
        context_types: Sequence[ContextType] | None,
        max_bytes: int,
    ) -> list[ContextEntry]:
        """Entries in sequence order, at most `limit`, cut by content size: every entry that starts
        before `max_bytes` of content have gone by, and the one after it (which tells that more
        follow). The caller makes its page of those (services/context.fit_page)."""

    async def add_many(
        self, session_id: int, first_sequence: int, entries: Sequence[NewEntry], *, now: datetime
    ) -> None:
        """Insert entries numbered from `first_sequence` (one statement, many rows)."""
        ...

    async def existing_keys(self, session_id: int, keys: Sequence[str]) -> set[str]:
        """Which of these idempotency keys the session already holds."""
        ...

    async def list_tail(self, session_id: int, *, up_to: int, limit: int, excerpt_chars: int) -> list[EntryExcerpt]:
        """The newest `limit` entries up to `up_to`, newest first, each cut to its head and tail."""
        ...


class SearchRepository(Protocol):
    """The full-text index over entries (written with them by EntryRepository.add/add_many)."""

    async def last_entry_id(self) -> int:
        """The newest entry's id (0 when there is none): a search's snapshot, fixed by its first page."""
        ...

    async def search(
        self,
        query: SearchQuery,
        *,
        session_id: int | None,
        context_types: Sequence[ContextType] | None,
        agent: str | None,
        up_to_id: int,
        after: tuple[float, int] | None,
        limit: int,
    ) -> list[SearchHit]:
        """Entries matching `query` with id <= `up_to_id`, best first (equal scores newest first),
        starting after `after` = (score, entry id) of the previous page's last hit."""
        ...

    async def merge(self, *, pages: int) -> bool:
        """Tidy the index by about `pages` pages of work; False when there was nothing to do.

        Appends leave it to this (SQLite: each append writes a small FTS5 segment and merges none,
        so appends stay cheap; this job merges them). PostgreSQL's GIN index needs nothing: False.
        """
        ...


class ImportRepository(Protocol):
    async def find(self, session_id: int, source: str) -> ImportCursor | None: ...

    async def save(self, cursor: ImportCursor, *, now: datetime) -> None: ...


class TokenRepository(Protocol):
    async def add(self, token: ApiToken, secret_hash: str) -> None: ...

    async def find_by_hash(self, secret_hash: str) -> ApiToken | None: ...

    async def list_tokens(self) -> list[ApiToken]: ...

    async def revoke(self, token_id: str, *, now: datetime) -> bool:
        """Mark it revoked (once); False when no such token exists."""
        ...


class StreamEventRepository(Protocol):
    """Stored SSE events of resumable HTTP streams; reads see only what `owner` wrote."""

    async def add_many(self, events: Sequence[NewStreamEvent], *, now: datetime) -> None: ...

    async def find_stream(self, stream_key: str, owner: StreamOwner, *, since: datetime) -> str | None: ...

    async def list_after(
        self, stream_key: str, owner: StreamOwner, *, after_seq: int, since: datetime, limit: int
    ) -> list[tuple[int, str | None]]: ...

    async def trim_stream(self, stream_key: str, *, up_to_seq: int) -> int: ...

    async def delete_before(self, cutoff: datetime, *, limit: int) -> int: ...

    async def newest_over_budget(self, max_bytes: int) -> int | None: ...

    async def delete_up_to(self, last_id: int, *, limit: int) -> int: ...


class HandoffRepository(Protocol):
    async def add(self, handoff: Handoff) -> None: ...

    async def get(self, handoff_id: str) -> Handoff:
        """Raise NotFound when there is no such handoff."""

    async def find_progress(self, handoff_id: str) -> HandoffProgress | None:
        """Where the handoff stands now (its status and answers), or None when there is no such handoff."""

    async def set_progress(self, handoff_id: str, *, expected: HandoffStatus, progress: HandoffProgress) -> bool:
        """Store `progress` if the handoff's status is still `expected`; False (nothing changed) otherwise."""

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
        """Newest first; `before` = (created_at, handoff_id) of the last row of the previous page."""

    async def pending_created_before(self, cutoff: datetime, *, limit: int) -> list[str]:
        """Ids of pending handoffs made at or before `cutoff`, oldest first."""

    async def list_for_session(self, session_id: int, *, limit: int) -> list[Handoff]: ...

    async def count_by_type_and_status(self) -> dict[tuple[HandoffType, HandoffStatus], int]: ...

    async def session_keys_starting(self, prefix: str, *, limit: int) -> list[str]:
        """Session keys that start with `prefix` (exactly, case included), in order."""

    async def agents_starting(self, prefix: str, *, limit: int) -> list[str]:
        """Names of agents that take or took part in a session, starting with `prefix`, in order."""

    async def handoff_ids_starting(self, prefix: str, *, pending_for: str | None, limit: int) -> list[str]:
        """Handoff ids starting with `prefix`; with `pending_for`, only that agent's pending ones, newest first."""


class EventRepository(Protocol):
    async def add(self, event: LifecycleEvent) -> None: ...

    async def list_for_session(self, session_id: int, *, limit: int) -> list[LifecycleEvent]: ...


class MaintenanceRepository(Protocol):
    """Bounded set-wise work for the lifecycle jobs (see storage/maintenance.py)."""

    async def due_session_keys(
        self,
        *,
        statuses: Sequence[SessionStatus],
        column: str,
        before: datetime,
        limit: int,
        policies: Sequence[str] | None = None,
    ) -> list[str]: ...

    async def pack_entries(self, session_id: int, *, after_sequence: int, limit: int) -> int: ...

    async def delete_entries(self, session_id: int, *, limit: int) -> int: ...

    async def delete_session(self, session_id: int) -> None: ...

    async def delete_orphans(self) -> dict[str, int]: ...

    async def sessions_with_wrong_counters(self, *, limit: int) -> list[tuple[int, str, int, int]]: ...

    async def fix_counters(self, session_id: int, *, entry_count: int, digest_json: str) -> None: ...

    async def add_job_run(
        self,
        *,
        job: str,
        holder: str,
        started_at: datetime,
        duration_ms: int,
        examined: int,
        changed: int,
        errors: int,
        details: dict[str, Any],
    ) -> None: ...

    async def recent_job_runs(self, *, job: str | None, limit: int) -> list[dict[str, Any]]: ...


class UnitOfWork(Protocol):
    """One transaction. Leaving the block without `commit()` rolls everything back."""

    sessions: SessionRepository
    entries: EntryRepository
    handoffs: HandoffRepository
    events: EventRepository
    maintenance: MaintenanceRepository
    imports: ImportRepository
    tokens: TokenRepository
    search: SearchRepository
    streams: StreamEventRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    def announce(self, change: Change) -> None:
        """Tell subscribers about `change` once this unit commits (nothing is told on rollback)."""
        ...


class TransactionWatch(Protocol):
    """One unit of work as an observer sees it: waiting for its connection, running, ending."""

    def opened(self) -> None: ...

    def committed(self) -> None: ...

    def ended(self, exc: BaseException | None) -> None: ...


class TransactionObserver(Protocol):
    """Told about every unit of work (metrics, spans); storage calls it, nothing wraps storage."""

    def begin(self, *, write: bool) -> TransactionWatch: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool, durable: bool = True) -> UnitOfWork:
        """A read unit sees one snapshot; a write unit holds the write lock from its start.

        `durable=False`: the commit does not wait for the disk (no fsync on SQLite, no WAL flush
        wait on PostgreSQL); it stays atomic and consistent, but a power cut may lose it. Only for
        data that can be lost, such as the replay buffer of answer streams.
        """


# -- change notices ------------------------------------------------------------------------


ChangeListener = Callable[[Change], None]


class ChangeFeed(Protocol):
    """How committed changes reach every replica that shares the database (or the Redis).

    Units of work hand over what they announced: on PostgreSQL inside the transaction (NOTIFY, so
    it is sent only on commit), elsewhere with `published` right after the commit. Each replica's
    feed hears every change, its own included, and calls its listeners.
    """

    backend: str

    def published(self, changes: Sequence[Change]) -> None:
        """After a commit: send the changes on. Never blocks the writer and never raises."""
        ...

    def listen(self, listener: ChangeListener) -> Callable[[], None]:
        """Call `listener` for every change heard (on the event loop; it must not block).
        Returns the callable that stops it."""
        ...

    async def run(self) -> None:
        """Receive from the backend until cancelled, reconnecting after failures."""
        ...


# -- cache ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheStats:
    """Counters since the cache was built. `errors` counts failures of the backend that were absorbed
    (turned into a miss or a no-op); `short_circuits` counts calls skipped while its circuit was open."""

    backend: str
    hits: int = 0
    misses: int = 0
    sets: int = 0
    deletes: int = 0
    errors: int = 0
    short_circuits: int = 0
    evictions: int = 0
    entries: int | None = None  # None where the backend cannot tell cheaply
    bytes: int | None = None
    circuit: str | None = None  # breaker state, for backends that have one

    @property
    def hit_ratio(self) -> float:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


class Cache(Protocol):
    """A byte cache with per-entry TTL. Every method but `ping` absorbs backend failures."""

    async def get(self, key: str) -> bytes | None:
        """The value, or None on a miss, an expired entry or any backend failure."""
        ...

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Store `value` for `ttl_seconds` (<= 0 removes the key). Failures are a silent no-op."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the key if present. Failures are a silent no-op: never rely on it for correctness."""
        ...

    def stats(self) -> CacheStats: ...

    async def ping(self) -> None:
        """Return when the backend answers; raise `handoff.errors.Unavailable` when it does not."""
        ...

    async def close(self) -> None: ...
