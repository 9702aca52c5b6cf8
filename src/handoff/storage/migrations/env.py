"""Alembic environment: runs on the connection handed in by handoff.storage.migrate."""

from __future__ import annotations

from alembic import context

from handoff.storage.migrate import include_name
from handoff.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `handoff migrate`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_name=include_name,
)
with context.begin_transaction():
    context.run_migrations()
