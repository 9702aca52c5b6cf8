"""The migrations create exactly the schema the code declares, and upgrading is repeatable."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from handoff.config import Settings
from handoff.container import Container
from handoff.storage import migrate
from handoff.storage.tables import metadata

pytestmark = pytest.mark.anyio


def _settings(tmp_path: Path) -> Settings:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}")  # type: ignore[arg-type]
    settings.db.auto_migrate = False
    return settings


async def test_migrations_build_the_declared_schema_without_drift(tmp_path: Path) -> None:
    container = Container.build(_settings(tmp_path))
    try:
        before, after = await migrate.upgrade(container.engine)
        assert (before, after) == (None, migrate.head_revision())

        def diff(conn: Connection) -> list[object]:
            context = MigrationContext.configure(conn, opts={"include_name": migrate.include_name})
            return list(compare_metadata(context, metadata))

        async with container.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await container.close()


async def test_upgrading_a_current_database_changes_nothing(tmp_path: Path) -> None:
    container = Container.build(_settings(tmp_path))
    try:
        await migrate.upgrade(container.engine)
        before, after = await migrate.upgrade(container.engine)
        assert before == after == migrate.head_revision()
    finally:
        await container.close()


async def test_readiness_reports_an_unmigrated_database(tmp_path: Path) -> None:
    container = Container.build(_settings(tmp_path))
    try:
        report = await container.health.check_ready()
        assert report["ready"] is False
        assert report["checks"][0]["schema"] == {"current": None, "head": migrate.head_revision()}
        await migrate.upgrade(container.engine)
        assert (await container.health.check_ready())["ready"] is True
    finally:
        await container.close()


def test_the_cheap_head_revision_is_the_newest_migration() -> None:
    from handoff.storage.revision import SCHEMA_HEAD

    assert migrate.head_revision() == SCHEMA_HEAD
