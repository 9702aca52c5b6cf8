"""Handoffs keep the handing-off agent's own note; imported logs keep how far they were read.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("handoffs") as batch:
        batch.add_column(sa.Column("note", Json, nullable=True))
    op.create_table(
        "import_sources",
        sa.Column("session_id", Id, nullable=False),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("byte_offset", sa.BigInteger, nullable=False),
        sa.Column("line_count", sa.BigInteger, nullable=False),
        sa.Column("records", sa.BigInteger, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.PrimaryKeyConstraint("session_id", "source", name="pk_import_sources"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], ondelete="CASCADE", name="fk_import_sources_session_id_sessions"
        ),
        sa.CheckConstraint("byte_offset >= 0", name="ck_import_sources_byte_offset"),
    )


def downgrade() -> None:
    op.drop_table("import_sources")
    with op.batch_alter_table("handoffs") as batch:
        batch.drop_column("note")
