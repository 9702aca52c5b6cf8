"""Creating the async engine with the per-connection settings each backend needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from handoff.config import DatabaseSettings

WRITE_OPTION = "handoff_write"


def create_engine(url: str, settings: DatabaseSettings) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, settings)
    if parsed.get_backend_name() == "postgresql":
        return _postgres_engine(url, settings)
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}; use sqlite:/// or postgresql://")


def _postgres_engine(url: str, settings: DatabaseSettings) -> AsyncEngine:
    server_settings = {"application_name": "handoff"}
    if settings.statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.statement_timeout_ms)
    if settings.schema_name:
        server_settings["search_path"] = settings.schema_name
    return create_async_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_seconds,
        pool_recycle=settings.pool_recycle_seconds,
        pool_pre_ping=True,
        connect_args={"server_settings": server_settings, "timeout": settings.connect_timeout_seconds},
    )


def _sqlite_engine(url: str, settings: DatabaseSettings) -> AsyncEngine:
    """The async (aiosqlite) engine: migrations and health probes. Requests use the sync engine below."""
    _ensure_parent_dir(url)
    engine = create_async_engine(url, pool_size=2, max_overflow=2)
    _configure_sqlite(engine.sync_engine, settings)
    return engine


def create_sqlite_request_engine(url: str, settings: DatabaseSettings) -> Engine:
    """The engine units of work use on SQLite: the plain sqlite3 driver, driven by SqliteUnitOfWork.

    `max_overflow=-1`: a checkout happens on the event loop, so it must never wait for a connection
    another request would only return on that same loop.
    """
    _ensure_parent_dir(url)
    sync_url = make_url(url).set(drivername="sqlite+pysqlite")
    engine = sa_create_engine(
        sync_url,
        poolclass=QueuePool,
        pool_size=settings.pool_size,
        max_overflow=-1,
        # Connections are used by the loop thread and by worker threads (BEGIN/COMMIT), never at once.
        connect_args={"check_same_thread": False},
    )
    _configure_sqlite(engine, settings)
    return engine


def _ensure_parent_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine, settings: DatabaseSettings) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front, so two writers never deadlock on a lock upgrade
        # and the busy timeout applies to the whole transaction; readers get a WAL snapshot.
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
