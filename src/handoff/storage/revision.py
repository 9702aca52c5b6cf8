"""Which schema revision a database is at, read without loading Alembic.

Starting a server (or a hook worker) on a current database should cost one small query, not the
100+ ms of importing Alembic; Alembic is loaded only when there is something to migrate.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

# The newest migration in migrations/versions; tests/integration/test_migrations.py ties the two.
SCHEMA_HEAD = "0008"


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision recorded in alembic_version, or None for an empty database."""
    async with engine.connect() as conn:
        try:
            row = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).first()
        except sa.exc.DBAPIError:
            return None  # no alembic_version table yet: nothing was ever migrated here
    return None if row is None else str(row[0])
