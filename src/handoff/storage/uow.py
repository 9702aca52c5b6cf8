"""Units of work: one connection, one transaction, the repositories bound to it.

`AsyncUnitOfWork` serves PostgreSQL (asyncpg); `SqliteUnitOfWork` serves SQLite with statements
inline and only the waiting calls in a worker thread (see db.py for why).
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

import anyio
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from handoff.errors import Conflict, DatabaseUnavailable
from handoff.resilience import CircuitBreaker
from handoff.services.ports import (
    EntryRepository,
    EventRepository,
    HandoffRepository,
    ImportRepository,
    MaintenanceRepository,
    SessionRepository,
    UnitOfWork,
    UnitOfWorkFactory,
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

_DRIVER_FAILURES = (sa_exc.OperationalError, sa_exc.InterfaceError)
# SQLSTATE classes that mean "the database cannot serve right now": connection exceptions,
# insufficient resources, operator intervention (shutting down, starting up, cancelled by a
# statement timeout), system errors. asyncpg raises some of them as plain DBAPIError.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57", "58")


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

    def _bind(self, db: Db) -> None:
        self.sessions = SqlSessionRepository(db)
        self.entries = SqlEntryRepository(db)
        self.handoffs = SqlHandoffRepository(db)
        self.events = SqlEventRepository(db)
        self.maintenance = SqlMaintenanceRepository(db)
        self.imports = SqlImportRepository(db)


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


class AsyncUnitOfWork(_Repositories):
    def __init__(self, engine: AsyncEngine, *, write: bool) -> None:
        self._engine = engine
        self._write = write
        self._conn: AsyncConnection | None = None
        self._done = False

    async def __aenter__(self) -> Self:
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
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await conn.close()
            _translate(exc)
            raise
        self._conn = conn
        self._bind(AsyncDb(conn))
        return self

    async def commit(self) -> None:
        assert self._conn is not None
        await self._conn.commit()
        self._done = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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


class SqliteUnitOfWork(_Repositories):
    def __init__(self, engine: Engine, *, write: bool) -> None:
        self._engine = engine
        self._write = write
        self._conn: Connection | None = None
        self._done = False

    async def __aenter__(self) -> Self:
        try:
            conn = self._engine.connect()  # the pool never blocks: it has no overflow limit
        except (*_DRIVER_FAILURES, OSError) as exc:
            raise DatabaseUnavailable("the database file cannot be opened") from exc
        try:
            if self._write:
                conn.execution_options(**{WRITE_OPTION: True})
                await _begin_immediate(conn)
            else:
                conn.begin()
        except BaseException as exc:
            conn.close()
            _translate(exc)
            raise
        self._conn = conn
        self._bind(InlineSqliteDb(conn))
        return self

    async def commit(self) -> None:
        assert self._conn is not None
        await anyio.to_thread.run_sync(self._conn.commit)  # the fsync; not abandoned on cancel
        self._done = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._conn is not None
        try:
            if not self._done:
                self._conn.rollback()  # discards the WAL frames of this transaction: no I/O wait
        finally:
            self._conn.close()
        _translate(exc)


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


class AsyncUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def __call__(self, *, write: bool) -> AsyncUnitOfWork:
        return AsyncUnitOfWork(self._engine, write=write)


class SqliteUnitOfWorkFactory:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __call__(self, *, write: bool) -> SqliteUnitOfWork:
        return SqliteUnitOfWork(self._engine, write=write)


class GuardedUnitOfWork(_Repositories):
    """A unit of work run through the database circuit breaker.

    While the breaker is open, entering fails fast with `Unavailable` instead of waiting on a dead
    database; the first unit of work after the reset timeout is the probe that closes it again.
    Only `DatabaseUnavailable` (driver failures) counts against the database.
    """

    def __init__(self, inner: UnitOfWork, breaker: CircuitBreaker) -> None:
        self._inner = inner
        self._guard = breaker.guard()

    async def __aenter__(self) -> Self:
        await self._guard.__aenter__()
        try:
            await self._inner.__aenter__()
        except BaseException as exc:
            await self._guard.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self.sessions = self._inner.sessions
        self.entries = self._inner.entries
        self.handoffs = self._inner.handoffs
        self.events = self._inner.events
        self.maintenance = self._inner.maintenance
        self.imports = self._inner.imports
        return self

    async def commit(self) -> None:
        await self._inner.commit()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._inner.__aexit__(exc_type, exc, tb)
        except BaseException as translated:
            await self._guard.__aexit__(type(translated), translated, translated.__traceback__)
            raise
        await self._guard.__aexit__(exc_type, exc, tb)


class GuardedUnitOfWorkFactory:
    def __init__(self, inner: UnitOfWorkFactory, breaker: CircuitBreaker) -> None:
        self._inner = inner
        self.breaker = breaker

    def __call__(self, *, write: bool) -> GuardedUnitOfWork:
        return GuardedUnitOfWork(self._inner(write=write), self.breaker)
