"""Resumable HTTP streams: the SSE events of recent responses, replayed after Last-Event-ID.

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "stream_events",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("stream_key", sa.String(24), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("stream_id", sa.Text, nullable=False),
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("agent", sa.String(128), nullable=True),
        sa.Column("payload", sa.Text, nullable=True),
        sa.Column("payload_bytes", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stream_events"),
        sa.UniqueConstraint("stream_key", "seq", name="uq_stream_events_stream_key_seq"),
    )
    op.create_index("ix_stream_events_created_at", "stream_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_stream_events_created_at", table_name="stream_events")
    op.drop_table("stream_events")
