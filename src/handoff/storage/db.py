"""The one call repositories make: execute a statement on the unit of work's connection.

Two implementations, because the two backends want different threading:

- PostgreSQL: asyncpg is natively async; statements are awaited on the event loop.
- SQLite: the async driver (aiosqlite) hops to a worker thread 3-4 times per statement, and those
  hops, not SQLite, dominated an append (bench/). Here statements inside a transaction run inline
  on the loop thread, where an indexed read or write from the page cache costs tens of µs and
  cannot wait on a lock (the write lock is taken by BEGIN IMMEDIATE, and WAL readers never block).
  Only the calls that can wait — BEGIN IMMEDIATE (busy timeout), COMMIT (fsync) and reads of
  whole pages of content — go to a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import anyio
from sqlalchemy.engine import Connection, CursorResult, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class Db(Protocol):
    @property
    def dialect(self) -> str: ...

    async def execute(self, statement: Executable, params: Params = None) -> CursorResult[Any]:
        """Run a small statement; the result is ready to read."""

    async def fetch_mappings(self, statement: Executable, params: Params = None) -> Sequence[RowMapping]:
        """Run a query that may read a lot (pages of content) and return all its rows."""


class AsyncDb:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    @property
    def dialect(self) -> str:
        return self._conn.dialect.name

    async def execute(self, statement: Executable, params: Params = None) -> CursorResult[Any]:
        _check_in_transaction(self._conn.in_transaction())
        return await self._conn.execute(statement, params)

    async def fetch_mappings(self, statement: Executable, params: Params = None) -> Sequence[RowMapping]:
        return (await self._conn.execute(statement, params)).mappings().all()


class InlineSqliteDb:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def dialect(self) -> str:
        return "sqlite"

    async def execute(self, statement: Executable, params: Params = None) -> CursorResult[Any]:
        _check_in_transaction(self._conn.in_transaction())
        return self._conn.execute(statement, params)

    async def fetch_mappings(self, statement: Executable, params: Params = None) -> Sequence[RowMapping]:
        def read() -> Sequence[RowMapping]:
            return self._conn.execute(statement, params).mappings().all()

        return await anyio.to_thread.run_sync(read)


def _check_in_transaction(active: bool) -> None:
    # After commit, SQLAlchemy would silently begin a new transaction; on SQLite that would be a
    # BEGIN IMMEDIATE on the event loop thread, waiting for the lock with the whole server stalled.
    if not active:
        raise RuntimeError("statement issued outside the unit of work's transaction (after commit?)")
