"""Full-text search over context entries: an FTS5 table on SQLite, a tsvector table with GIN on PostgreSQL.

Existing entries are indexed here, archived (packed) ones from their unpacked text, so a database
upgraded from 0004 finds everything it held. On PostgreSQL the indexes are built after that fill (a
GIN index builds faster in one pass than row by row). See storage/search.py for what is indexed and
how the index stays in step with appends and deletions.

SQLite keeps the index in step with deletions by a trigger on context_entries; a later migration
that rebuilds context_entries (batch_alter_table copies and drops it, and its triggers with it) must
create `context_search_delete` again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10
"""

from alembic import op

from handoff.storage import search

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Indexing every stored entry takes minutes on a large database: longer than the statement
        # timeout requests run with, and the GIN build wants more memory than a request's default.
        op.execute("SET LOCAL statement_timeout = 0")
        op.execute("SET LOCAL maintenance_work_mem = '256MB'")
        op.execute(search.POSTGRES_TABLE)
        search.backfill(bind)
        for statement in search.POSTGRES_INDEXES:
            op.execute(statement)
        return
    for statement in search.SQLITE_SCHEMA:
        op.execute(statement)
    if search.backfill(bind):
        # The fill wrote the index in many pieces (appends never merge them; the merge_search job
        # does, a little at a time): one piece reads fastest, so merge them all now, once.
        op.execute(search.SQLITE_OPTIMIZE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {search.SQLITE_DELETE_TRIGGER}")
    op.execute(f"DROP TABLE IF EXISTS {search.INDEX_TABLE}")
