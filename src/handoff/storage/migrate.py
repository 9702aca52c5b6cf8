"""Running Alembic migrations on our async engine (through run_sync)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from handoff.storage.engine import WRITE_OPTION

_SCRIPTS = Path(__file__).parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


# Any fixed 64-bit number: the PostgreSQL advisory lock that serialises concurrent migrators.
_MIGRATION_LOCK = 0x68616E646F6666  # "handoff"


async def upgrade(engine: AsyncEngine, revision: str = "head", *, schema: str | None = None) -> tuple[str | None, str]:
    """Upgrade to `revision`; return (before, after). Safe to run when already current.

    Several replicas may start at once: on PostgreSQL they queue on an advisory lock and the
    later ones find the schema current; on SQLite the write transaction (BEGIN IMMEDIATE) does it.
    """
    before = await current_revision(engine)

    def run(conn: Connection) -> None:
        command.upgrade(_config(conn), revision)

    async with engine.connect() as conn:
        await conn.execution_options(**{WRITE_OPTION: True})
        async with conn.begin():
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
                if schema:
                    await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await conn.run_sync(run)
    return before, await current_revision(engine) or ""


def include_name(name: str | None, type_: str, _parents: object) -> bool:
    """What schema comparison looks at: everything but the search index, which tables.py does not
    declare (an FTS5 table on SQLite, a tsvector table on PostgreSQL; see storage/search.py)."""
    from handoff.storage.search import is_index_table

    return not (type_ == "table" and name is not None and is_index_table(name))


async def drift(engine: AsyncEngine) -> list[str]:
    """Differences between the live schema and the tables this code declares (empty when none)."""
    from alembic.autogenerate import compare_metadata

    from handoff.storage.tables import metadata

    def compare(conn: Connection) -> list[str]:
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        return [repr(diff) for diff in compare_metadata(context, metadata)]

    async with engine.connect() as conn:
        return await conn.run_sync(compare)
