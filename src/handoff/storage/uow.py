"""Units of work: one connection, one transaction, the repositories bound to it.

`AsyncUnitOfWork` serves PostgreSQL (asyncpg); `SqliteUnitOfWork` serves SQLite with statements
inline and only the waiting calls in a worker thread (see db.py for why). Both run every
transaction through the database circuit breaker (while it is open, entering fails fast with
`unavailable` instead of waiting on a dead database) and report it to the observer (wait and
in-progress metrics, a span while tracing is on): entered once, in `_UnitOfWork`, with no wrapper
objects around the unit or its repositories.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Self

import anyio
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from handoff.domain.notices import Change, encode
from handoff.errors import Conflict, DatabaseUnavailable
from handoff.resilience import CircuitBreaker
from handoff.services.ports import (
    EntryRepository,
    EventRepository,
    HandoffRepository,
    ImportRepository,
    MaintenanceRepository,
    SearchRepository,
    SessionRepository,
    StreamEventRepository,
    TokenRepository,
    TransactionObserver,
    TransactionWatch,
)
from handoff.storage.db import AsyncDb, Db, InlineSqliteDb
from handoff.storage.engine import WRITE_OPTION
from handoff.storage.maintenance import SqlMaintenanceRepository
from handoff.storage.repositories import (
    SqlEntryRepository,
    SqlEventRepository,
    SqlHandoffRepository,
    SqlImportRepository,
    SqlSessionRepository,
)
from handoff.storage.search import SqlSearchRepository
from handoff.storage.streams import SqlStreamEventRepository
from handoff.storage.tokens import SqlTokenRepository

_DRIVER_FAILURES = (sa_exc.OperationalError, sa_exc.InterfaceError)
# SQLSTATE classes that mean "the database cannot serve right now": connection exceptions,
# insufficient resources, operator intervention (shutting down, starting up, cancelled by a
# statement timeout), system errors. asyncpg raises some of them as plain DBAPIError.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57", "58")
# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more.
NOTIFY_PAYLOAD_BYTES = 7900

OnCommit = Callable[[Sequence[Change]], None]


def _is_driver_failure(exc: BaseException | None) -> bool:
    if isinstance(exc, _DRIVER_FAILURES):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
        return exc.connection_invalidated or sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
    return False


class _Repositories:
    sessions: SessionRepository
    entries: EntryRepository
    handoffs: HandoffRepository
    events: EventRepository
    maintenance: MaintenanceRepository
    imports: ImportRepository
    tokens: TokenRepository
    search: SearchRepository
    streams: StreamEventRepository

    def _bind(self, db: Db) -> None:
        self.sessions = SqlSessionRepository(db)
        self.entries = SqlEntryRepository(db)
        self.handoffs = SqlHandoffRepository(db)
        self.events = SqlEventRepository(db)
        self.maintenance = SqlMaintenanceRepository(db)
        self.imports = SqlImportRepository(db)
        self.tokens = SqlTokenRepository(db)
        self.search = SqlSearchRepository(db)
        self.streams = SqlStreamEventRepository(db)


def _translate(exc: BaseException | None) -> None:
    """Driver failures become our errors at this boundary; services never see SQLAlchemy."""
    if isinstance(exc, sa_exc.TimeoutError):
        raise DatabaseUnavailable(
            "all database connections are busy (pool exhausted); try again shortly", {"reason": "pool_exhausted"}
        ) from exc
    if isinstance(exc, sa_exc.IntegrityError):
        raise Conflict("the write conflicted with a concurrent change; retry it") from exc
    if _is_driver_failure(exc):
        raise DatabaseUnavailable("the database is busy or unavailable; try again shortly") from exc


class _UnitOfWork(_Repositories):
    """What every backend's unit of work does around its own open and close."""

    def __init__(
        self,
        *,
        write: bool,
        breaker: CircuitBreaker | None,
        observer: TransactionObserver | None,
        on_commit: OnCommit | None = None,
    ) -> None:
        self._write = write
        self._breaker = breaker
        self._observer = observer
        self._on_commit = on_commit
        self._stack: AsyncExitStack | None = None
        self._watch: TransactionWatch | None = None
        self._done = False
        self._changes: list[Change] = []

    def announce(self, change: Change) -> None:
        self._changes.append(change)

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        # The observer sees every attempt, including one the open breaker turns away.
        watch = self._observer.begin(write=self._write) if self._observer is not None else None
        try:
            if self._breaker is not None:
                # Only DatabaseUnavailable (a driver failure) counts against the database: the
                # breaker's is_failure decides, and _close translates driver errors before it sees them.
                await stack.enter_async_context(self._breaker.guard())
            await self._open()
        except BaseException as exc:
            if watch is not None:
                watch.ended(exc)
            await stack.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        if watch is not None:
            watch.opened()
        self._stack, self._watch = stack, watch
        return self

    async def commit(self) -> None:
        await self._commit()
        self._done = True
        if self._watch is not None:
            self._watch.committed()
        if self._changes and self._on_commit is not None:
            self._on_commit(self._changes)  # enqueues only: delivery happens off the write path

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None
        stack, watch = self._stack, self._watch
        try:
            await self._close(exc)
        except BaseException as translated:
            if watch is not None:
                watch.ended(translated)
            await stack.__aexit__(type(translated), translated, translated.__traceback__)
            raise
        if watch is not None:
            watch.ended(exc)
        await stack.__aexit__(exc_type, exc, tb)

    async def _open(self) -> None:
        raise NotImplementedError

    async def _commit(self) -> None:
        raise NotImplementedError

    async def _close(self, exc: BaseException | None) -> None:
        raise NotImplementedError


class AsyncUnitOfWork(_UnitOfWork):
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        write: bool,
        breaker: CircuitBreaker | None = None,
        observer: TransactionObserver | None = None,
        notify_channel: str | None = None,
        on_commit: OnCommit | None = None,
        durable: bool = True,
    ) -> None:
        super().__init__(write=write, breaker=breaker, observer=observer, on_commit=on_commit)
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._notify_channel = notify_channel
        self._durable = durable

    async def _open(self) -> None:
        try:
            conn = await self._engine.connect()
        except sa_exc.TimeoutError as exc:
            _translate(exc)
            raise
        except (sa_exc.DBAPIError, OSError, TimeoutError) as exc:  # any failure to connect
            raise DatabaseUnavailable("the database is unavailable; try again shortly") from exc
        try:
            if self._write:
                await conn.execution_options(**{WRITE_OPTION: True})
            await conn.begin()
            if not self._durable and conn.dialect.name == "postgresql":
                await conn.execute(_ASYNC_COMMIT)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await conn.close()
            _translate(exc)
            raise
        self._conn = conn
        self._bind(AsyncDb(conn))

    async def _commit(self) -> None:
        assert self._conn is not None
        if self._changes and self._notify_channel is not None:
            # In the transaction: PostgreSQL delivers a NOTIFY only if the COMMIT below succeeds,
            # so no replica is ever told of a change that was rolled back.
            for payload in encode(self._changes, max_bytes=NOTIFY_PAYLOAD_BYTES):
                await self._conn.execute(_NOTIFY, {"channel": self._notify_channel, "payload": payload})
        await self._conn.commit()

    async def _close(self, exc: BaseException | None) -> None:
        assert self._conn is not None
        # Shielded: a cancelled request (client cancel, disconnect, deadline) must still release its
        # transaction and connection.
        with anyio.CancelScope(shield=True):
            try:
                if not self._done:
                    await self._conn.rollback()
            finally:
                await self._conn.close()
        _translate(exc)


class SqliteUnitOfWork(_UnitOfWork):
    def __init__(
        self,
        engine: Engine,
        *,
        write: bool,
        breaker: CircuitBreaker | None = None,
        observer: TransactionObserver | None = None,
        on_commit: OnCommit | None = None,
        durable: bool = True,
    ) -> None:
        super().__init__(write=write, breaker=breaker, observer=observer, on_commit=on_commit)
        self._engine = engine
        self._conn: Connection | None = None
        self._durable = durable

    async def _open(self) -> None:
        try:
            conn = self._engine.connect()  # the pool never blocks: it has no overflow limit
        except (*_DRIVER_FAILURES, OSError) as exc:
            raise DatabaseUnavailable("the database file cannot be opened") from exc
        try:
            if self._write:
                conn.execution_options(**{WRITE_OPTION: True})
                if not self._durable:
                    # In WAL mode NORMAL skips the fsync at commit; the next durable commit on
                    # the file syncs these frames too. Set back to FULL before the connection
                    # returns to the pool (_close).
                    _set_synchronous(conn, "NORMAL")
                await _begin_immediate(conn)
            else:
                conn.begin()
        except BaseException as exc:
            if not self._durable:
                _set_synchronous(conn, "FULL")
            conn.close()
            _translate(exc)
            raise
        self._conn = conn
        self._bind(InlineSqliteDb(conn))

    async def _commit(self) -> None:
        assert self._conn is not None
        await anyio.to_thread.run_sync(self._conn.commit)  # the fsync; not abandoned on cancel

    async def _close(self, exc: BaseException | None) -> None:
        assert self._conn is not None
        try:
            if not self._done:
                self._conn.rollback()  # discards the WAL frames of this transaction: no I/O wait
        finally:
            if not self._durable and self._write:
                _set_synchronous(self._conn, "FULL")
            self._conn.close()
        _translate(exc)


def _set_synchronous(conn: Connection, level: str) -> None:
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    dbapi.execute(f"PRAGMA synchronous={level}")


async def _begin_immediate(conn: Connection) -> None:
    """Take SQLite's write lock: inline when it is free (the usual case), else wait in a thread.

    The inline attempt runs with a zero busy timeout, so it can never stall the event loop; only
    when another writer holds the lock do we pay a thread hop and wait up to the busy timeout.
    """
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    busy_timeout = dbapi.execute("PRAGMA busy_timeout").fetchone()[0]
    dbapi.execute("PRAGMA busy_timeout=0")
    try:
        conn.begin()
        return
    except sa_exc.OperationalError:
        conn.rollback()  # clears SQLAlchemy's failed-begin state; nothing was started
    finally:
        dbapi.execute(f"PRAGMA busy_timeout={int(busy_timeout)}")
    await anyio.to_thread.run_sync(conn.begin)


_NOTIFY = sa.text("SELECT pg_notify(:channel, :payload)")
# This transaction's commit returns before its WAL reaches the disk (it is still atomic).
_ASYNC_COMMIT = sa.text("SET LOCAL synchronous_commit TO OFF")


class AsyncUnitOfWorkFactory:
    """`notify_channel`: announced changes are sent with NOTIFY on it inside the transaction;
    `on_commit`: they are handed to it after the commit (a feed other than PostgreSQL's)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        breaker: CircuitBreaker | None = None,
        observer: TransactionObserver | None = None,
        notify_channel: str | None = None,
        on_commit: OnCommit | None = None,
    ) -> None:
        self._engine = engine
        self.breaker = breaker
        self._observer = observer
        self._notify_channel = notify_channel
        self._on_commit = on_commit

    def __call__(self, *, write: bool, durable: bool = True) -> AsyncUnitOfWork:
        return AsyncUnitOfWork(
            self._engine,
            write=write,
            breaker=self.breaker,
            observer=self._observer,
            notify_channel=self._notify_channel,
            on_commit=self._on_commit,
            durable=durable,
        )


class SqliteUnitOfWorkFactory:
    def __init__(
        self,
        engine: Engine,
        *,
        breaker: CircuitBreaker | None = None,
        observer: TransactionObserver | None = None,
        on_commit: OnCommit | None = None,
    ) -> None:
        self._engine = engine
        self.breaker = breaker
        self._observer = observer
        self._on_commit = on_commit

    def __call__(self, *, write: bool, durable: bool = True) -> SqliteUnitOfWork:
        return SqliteUnitOfWork(
            self._engine,
            write=write,
            breaker=self.breaker,
            observer=self._observer,
            on_commit=self._on_commit,
            durable=durable,
        )
