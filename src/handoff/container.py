"""The composition root: settings → engine → unit of work → services. Nothing else builds adapters."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self, TypeVar

import anyio
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from handoff.analysis.runner import AnalyzerLimits, SubprocessAnalyzer
from handoff.cache import MemoryCache
from handoff.cache.feeds import LocalChangeFeed, NoChangeFeed
from handoff.clock import SystemClock
from handoff.config import CacheSettings, Settings
from handoff.errors import CannotStart, DatabaseUnavailable
from handoff.jobs.runner import JobRunner
from handoff.logs import get_logger
from handoff.observability.instrumented import InstrumentedCache, TransactionMetrics
from handoff.observability.metrics import Metrics
from handoff.redaction import Redactor
from handoff.resilience import BreakerState, CircuitBreaker, TransientRetry
from handoff.services.analysis import AnalysisService
from handoff.services.completion import CompletionService
from handoff.services.context import ContextService
from handoff.services.handoffs import HandoffService
from handoff.services.health import HealthService
from handoff.services.imports import ImportService
from handoff.services.lifecycle import LifecycleService
from handoff.services.ports import Cache, ChangeFeed, Clock, JobLock, UnitOfWorkFactory
from handoff.services.search import SearchService
from handoff.services.sessions import SessionService
from handoff.services.streams import StreamService
from handoff.services.tokens import TokenService
from handoff.storage.engine import create_engine, create_sqlite_request_engine, is_sqlite
from handoff.storage.locks import PostgresAdvisoryLock, SqliteLease
from handoff.storage.notify import PostgresChangeFeed, channel_name
from handoff.storage.probe import DatabaseProbe, explain_connection_failure
from handoff.storage.revision import SCHEMA_HEAD, current_revision
from handoff.storage.uow import AsyncUnitOfWorkFactory, SqliteUnitOfWorkFactory

log = get_logger(__name__)

T = TypeVar("T")

# A server that cannot reach its database must say so promptly, not hang in a retry loop.
STARTUP_PROBE_SECONDS = 2.5


def _holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _database_engine(url: str, settings: Settings) -> AsyncEngine:
    from sqlalchemy.exc import ArgumentError

    try:
        return create_engine(url, settings.db)
    except ModuleNotFoundError as error:
        raise CannotStart(
            f"this database needs the driver {error.name!r}, which is not installed: pip install 'handoff[postgres]'"
        ) from error
    except OSError as error:  # the SQLite file's directory could not be created
        raise CannotStart(
            f"cannot create the SQLite database at {error.filename or url}: {error.strerror or error}; "
            "set HANDOFF_DATABASE_URL=sqlite:///A/WRITABLE/PATH/handoff.db"
        ) from error
    except (ValueError, ArgumentError) as error:
        # ArgumentError's text would quote the URL, password included: name the setting instead.
        raise CannotStart(
            "HANDOFF_DATABASE_URL is not a database URL handoff supports; "
            "use sqlite:///PATH/handoff.db or postgresql://USER[:PASSWORD]@HOST:5432/DATABASE"
        ) from error


def build_cache(settings: CacheSettings) -> Cache:
    """Redis when configured, else a bounded in-process cache: the same port either way."""
    if settings.redis_url is None:
        return MemoryCache(max_bytes=settings.memory_max_bytes, max_entries=settings.memory_max_entries)
    try:
        from handoff.cache.redis_cache import RedisCache
    except ModuleNotFoundError as error:
        raise CannotStart(
            f"HANDOFF_REDIS_URL needs the package {error.name!r}, which is not installed: pip install 'handoff[redis]'"
        ) from error
    try:
        return RedisCache(
            settings.redis_url.get_secret_value(),
            key_prefix=settings.key_prefix,
            socket_timeout=settings.socket_timeout_seconds,
            max_connections=settings.max_connections,
            failure_threshold=settings.breaker_failure_threshold,
            reset_timeout=settings.breaker_reset_seconds,
        )
    except ValueError as error:  # redis names the schemes it accepts; the URL itself is not echoed
        raise CannotStart(f"HANDOFF_REDIS_URL is not a Redis URL: {error}") from error


def build_change_feed(settings: Settings, engine: AsyncEngine) -> ChangeFeed:
    """Where committed changes go so that subscribers on every replica hear of them."""
    backend = settings.notify.backend
    redis_url = settings.cache.redis_url
    if backend == "auto":
        backend = "redis" if redis_url is not None else "local" if is_sqlite(engine) else "postgres"
    if backend == "off":
        return NoChangeFeed()
    if backend == "local":
        return LocalChangeFeed()
    if backend == "postgres":
        if is_sqlite(engine):
            raise CannotStart("HANDOFF_NOTIFY__BACKEND=postgres needs a PostgreSQL database; use local or redis")
        return PostgresChangeFeed(engine, channel_name(settings.db.schema_name))
    if redis_url is None:
        raise CannotStart("HANDOFF_NOTIFY__BACKEND=redis needs HANDOFF_REDIS_URL")
    from handoff.cache.redis_feed import RedisChangeFeed

    # Per key prefix and schema: deployments sharing one Redis never hear each other's sessions.
    channel = f"{settings.cache.key_prefix}changes:{settings.db.schema_name or ''}"
    timeout = max(1.0, settings.cache.socket_timeout_seconds)
    return RedisChangeFeed(redis_url.get_secret_value(), channel, socket_timeout=timeout)


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionService
    context: ContextService
    handoffs: HandoffService
    imports: ImportService
    health: HealthService
    analysis: AnalysisService
    lifecycle: LifecycleService
    jobs: JobRunner
    completion: CompletionService
    tokens: TokenService
    search: SearchService
    streams: StreamService
    changes: ChangeFeed = field(default_factory=NoChangeFeed)
    clock: Clock = field(default_factory=SystemClock)
    # SQLite only: the sync engine requests run on (see storage/db.py).
    request_engine: Engine | None = None
    cache: Cache | None = None
    db_breaker: CircuitBreaker | None = None
    job_lock: JobLock | None = None
    metrics: Metrics = field(default_factory=Metrics)

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None, metrics: Metrics | None = None) -> Container:
        clock = clock or SystemClock()
        url = settings.database_url_value()
        engine = _database_engine(url, settings)
        request_engine: Engine | None = None
        db = settings.db
        breaker = CircuitBreaker(
            "database",
            failure_threshold=db.breaker_failure_threshold,
            reset_timeout=db.breaker_reset_seconds,
            is_failure=lambda exc: isinstance(exc, DatabaseUnavailable),
        )
        metrics = metrics or Metrics(
            scrape_timeout_seconds=settings.metrics.scrape_timeout_seconds,
            inventory_max_age_seconds=settings.metrics.inventory_max_age_seconds,
        )
        # Every unit of work goes through the breaker and reports to the observer (spans only while
        # tracing is on; wait and in-progress gauges always): one object per transaction, no wrappers.
        observer = TransactionMetrics(metrics, system=engine.dialect.name)
        guarded: UnitOfWorkFactory
        changes = build_change_feed(settings, engine)
        # PostgreSQL's feed is sent inside each transaction (NOTIFY); the others right after commit.
        on_commit = None if isinstance(changes, PostgresChangeFeed | NoChangeFeed) else changes.published
        if is_sqlite(engine):
            request_engine = create_sqlite_request_engine(url, settings.db)
            guarded = SqliteUnitOfWorkFactory(request_engine, breaker=breaker, observer=observer, on_commit=on_commit)
        else:
            notify_channel = changes.channel if isinstance(changes, PostgresChangeFeed) else None
            guarded = AsyncUnitOfWorkFactory(
                engine, breaker=breaker, observer=observer, notify_channel=notify_channel, on_commit=on_commit
            )
        retry = TransientRetry(
            lambda exc: isinstance(exc, DatabaseUnavailable),
            attempts=db.retry_attempts,
            deadline=db.retry_deadline_seconds,
        )
        cache = InstrumentedCache(build_cache(settings.cache))
        redactor = Redactor(
            enabled=settings.redaction.enabled,
            extra_patterns=settings.redaction.extra_patterns,
            on_redacted=metrics.record_redactions,
        )
        sessions = SessionService(guarded, clock, settings.limits, settings.lifecycle, retry, redactor)
        context = ContextService(guarded, clock, settings.limits, retry, cache, redactor)
        a = settings.analysis.limits
        analyzer = SubprocessAnalyzer(
            settings.analysis.roots,
            AnalyzerLimits(
                max_file_bytes=a.max_file_bytes,
                max_files=a.max_files,
                max_total_bytes=a.max_total_bytes,
                max_seconds=a.max_seconds,
                parse_seconds=a.parse_seconds,
                memory_bytes=a.worker_memory_bytes,
                max_concurrent=a.max_concurrent,
            ),
        )
        job_lock: JobLock = SqliteLease(engine, clock) if is_sqlite(engine) else PostgresAdvisoryLock(engine)
        lifecycle = LifecycleService(
            guarded, clock, settings.lifecycle, holder=_holder_name(), streams=settings.streams
        )
        handoffs = HandoffService(
            guarded, clock, settings.limits, settings.brief, retry, cache, redactor, lifecycle=settings.lifecycle
        )
        health = HealthService(DatabaseProbe(engine), cache, breaker_open=lambda: breaker.state is BreakerState.OPEN)
        capacity = 4 if is_sqlite(engine) else db.pool_size + db.max_overflow  # SQLite: engine.py's 2 + 2
        metrics.watch_pool("main", engine.pool, capacity=capacity)
        if request_engine is not None:
            metrics.watch_pool("sqlite_requests", request_engine.pool, capacity=None)  # max_overflow=-1
        metrics.watch_cache(cache)
        metrics.watch_breaker(breaker)
        metrics.watch_readiness(health.check_ready)
        metrics.watch_inventory(sessions.count_by_status, handoffs.count_by_type_and_status)
        return cls(
            settings=settings,
            engine=engine,
            lifecycle=lifecycle,
            jobs=JobRunner(
                lifecycle,
                job_lock,
                settings.lifecycle,
                observer=metrics.observe_job,
                on_skipped=metrics.record_job_skipped,
                streams=settings.streams,
            ),
            sessions=sessions,
            context=context,
            analysis=AnalysisService(analyzer, context, sessions, settings.limits),
            handoffs=handoffs,
            completion=CompletionService(guarded, settings.limits, retry),
            imports=ImportService(guarded, clock, sessions, context),
            tokens=TokenService(guarded, clock, settings.limits, retry),
            search=SearchService(guarded, settings.limits, retry),
            changes=changes,
            streams=StreamService(guarded, clock, settings.streams, retry),
            health=health,
            metrics=metrics,
            clock=clock,
            request_engine=request_engine,
            cache=cache,
            db_breaker=breaker,
            job_lock=job_lock,
        )

    async def start(self) -> None:
        """Bring dependencies up; migrate the schema when allowed and needed.

        Fails fast with `CannotStart` (one line: cause and fix) when the database cannot be reached
        within a few seconds or its schema is not the one this version runs on.
        """
        database = self.engine.url.render_as_string(hide_password=True)
        try:
            with anyio.fail_after(min(self.settings.db.connect_timeout_seconds, STARTUP_PROBE_SECONDS)):
                revision = await current_revision(self.engine)
        except Exception as error:  # the outermost boundary of start-up: every cause becomes one line
            raise CannotStart(
                f"cannot reach the database {database}: {explain_connection_failure(error)}. "
                "Check HANDOFF_DATABASE_URL; `handoff doctor` runs the checks again."
            ) from error
        if revision is not None and revision > SCHEMA_HEAD:
            raise CannotStart(
                f"the database {database} is at schema {revision}, newer than this version of handoff "
                f"understands ({SCHEMA_HEAD}): upgrade handoff."
            )
        if revision != SCHEMA_HEAD:
            if not self.settings.db.auto_migrate:
                raise CannotStart(
                    f"the database {database} is at schema {revision or 'empty'}, this version needs "
                    f"{SCHEMA_HEAD}: run `handoff migrate` (or set HANDOFF_DB__AUTO_MIGRATE=true)."
                )
            before, after = await self.migrate()
            log.info("schema migrated", from_revision=before, to_revision=after)
        report = await self.health.check_ready()
        log.info("dependencies checked", **report)

    async def migrate(self) -> tuple[str | None, str]:
        """Upgrade the schema to the newest revision; return (before, after)."""
        from handoff.storage import migrate  # Alembic: loaded only when there is work for it

        return await migrate.upgrade(self.engine, schema=self.settings.db.schema_name)

    async def schema_revisions(self) -> tuple[str | None, str]:
        """(revision the database is at, revision this code expects)."""
        return await current_revision(self.engine), SCHEMA_HEAD

    async def schema_drift(self) -> list[str]:
        """How the live schema differs from what the code declares (empty when it matches)."""
        from handoff.storage import migrate

        return await migrate.drift(self.engine)

    async def close(self) -> None:
        await self.analysis.close()  # the warm analysis workers exit with the server
        if self.cache is not None:
            await self.cache.close()
        if self.request_engine is not None:
            self.request_engine.dispose()
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.close()  # __aexit__ does not run when entering fails
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
