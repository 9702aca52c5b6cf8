"""The SQL unit of work: one connection, one transaction, the repositories bound to it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import anyio
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from handoff.errors import Conflict, Unavailable
from handoff.services.ports import EntryRepository, EventRepository, HandoffRepository, SessionRepository
from handoff.storage.engine import WRITE_OPTION
from handoff.storage.repositories import (
    SqlEntryRepository,
    SqlEventRepository,
    SqlHandoffRepository,
    SqlSessionRepository,
)


class SqlUnitOfWork:
    sessions: SessionRepository
    entries: EntryRepository
    handoffs: HandoffRepository
    events: EventRepository

    def __init__(self, engine: AsyncEngine, *, write: bool) -> None:
        self._engine = engine
        self._write = write
        self._conn: AsyncConnection | None = None
        self._done = False

    async def __aenter__(self) -> Self:
        try:
            conn = await self._engine.connect()
        except (sa_exc.OperationalError, sa_exc.InterfaceError, OSError) as exc:
            raise Unavailable("the database is unavailable; try again shortly") from exc
        try:
            if self._write:
                await conn.execution_options(**{WRITE_OPTION: True})
            await conn.begin()
        except BaseException as exc:
            await conn.close()
            if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
                raise Unavailable("the database is busy or unavailable; try again shortly") from exc
            raise
        self._conn = conn
        self.sessions = SqlSessionRepository(conn)
        self.entries = SqlEntryRepository(conn)
        self.handoffs = SqlHandoffRepository(conn)
        self.events = SqlEventRepository(conn)
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
        # transaction, or SQLite's write lock would stay held by a connection nobody owns.
        with anyio.CancelScope(shield=True):
            try:
                if not self._done:
                    await self._conn.rollback()
            finally:
                await self._conn.close()
        # Translate driver failures at the boundary, so services and entry points only see our tree.
        if isinstance(exc, sa_exc.IntegrityError):
            raise Conflict("the write conflicted with a concurrent change; retry it") from exc
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) or (
            isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
        ):
            raise Unavailable("the database is busy or unavailable; try again shortly") from exc


class SqlUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def __call__(self, *, write: bool) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._engine, write=write)
