"""The composition root: settings → engine → unit of work → services. Nothing else builds adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from handoff.clock import SystemClock
from handoff.config import Settings
from handoff.logs import get_logger
from handoff.services.context import ContextService
from handoff.services.handoffs import HandoffService
from handoff.services.health import HealthService
from handoff.services.ports import Clock, UnitOfWorkFactory
from handoff.services.sessions import SessionService
from handoff.storage import migrate
from handoff.storage.engine import create_engine, create_sqlite_request_engine, is_sqlite
from handoff.storage.probe import DatabaseProbe
from handoff.storage.uow import AsyncUnitOfWorkFactory, SqliteUnitOfWorkFactory

log = get_logger(__name__)


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionService
    context: ContextService
    handoffs: HandoffService
    health: HealthService
    clock: Clock = field(default_factory=SystemClock)
    # SQLite only: the sync engine requests run on (see storage/db.py).
    request_engine: Engine | None = None

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None) -> Container:
        clock = clock or SystemClock()
        url = settings.database_url_value()
        engine = create_engine(url, settings.db)
        request_engine: Engine | None = None
        uow: UnitOfWorkFactory
        if is_sqlite(engine):
            request_engine = create_sqlite_request_engine(url, settings.db)
            uow = SqliteUnitOfWorkFactory(request_engine)
        else:
            uow = AsyncUnitOfWorkFactory(engine)
        return cls(
            settings=settings,
            engine=engine,
            sessions=SessionService(uow, clock, settings.limits, settings.lifecycle),
            context=ContextService(uow, clock, settings.limits),
            handoffs=HandoffService(uow, clock, settings.limits, settings.brief),
            health=HealthService(DatabaseProbe(engine)),
            clock=clock,
            request_engine=request_engine,
        )

    async def start(self) -> None:
        """Bring dependencies up; migrate the schema when allowed and needed."""
        if self.settings.db.auto_migrate:
            before, after = await self.migrate()
            if before != after:
                log.info("schema migrated", from_revision=before, to_revision=after)
        report = await self.health.check_ready()
        log.info("dependencies checked", **report)

    async def migrate(self) -> tuple[str | None, str]:
        """Upgrade the schema to the newest revision; return (before, after)."""
        return await migrate.upgrade(self.engine, schema=self.settings.db.schema_name)

    async def schema_revisions(self) -> tuple[str | None, str]:
        """(revision the database is at, revision this code expects)."""
        return await migrate.current_revision(self.engine), migrate.head_revision()

    async def close(self) -> None:
        if self.request_engine is not None:
            self.request_engine.dispose()
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
