"""Initial schema: sessions, participants, context entries, handoffs, lifecycle events.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Ts = sa.DateTime(timezone=True)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("session_key", sa.String(128), nullable=False),
        sa.Column("source_agent", sa.String(128), nullable=False),
        sa.Column("owner_agent", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("meta", Json, nullable=False),
        sa.Column("ttl_seconds", sa.Integer, nullable=False),
        sa.Column("entry_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("content_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.Column("last_activity_at", Ts, nullable=False),
        sa.Column("expires_at", Ts, nullable=False),
        sa.Column("digest", sa.Text, nullable=False, server_default="{}"),
        sa.Column("retention_policy", sa.String(32), nullable=False, server_default="standard"),
        sa.Column("status_changed_at", Ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.UniqueConstraint("session_key", name="uq_sessions_session_key"),
        sa.CheckConstraint(
            _one_of("status", ("active", "dormant", "completed", "expired", "archived")),
            name="ck_sessions_status",
        ),
        sa.CheckConstraint("entry_count >= 0", name="ck_sessions_entry_count"),
        postgresql_with={"fillfactor": 70},
    )
    op.create_index("ix_sessions_status_id", "sessions", ["status", "id"])
    op.create_index("ix_sessions_owner_agent", "sessions", ["owner_agent"])
    op.create_index("ix_sessions_status_changed", "sessions", ["status", "status_changed_at"])

    op.create_table(
        "session_participants",
        sa.Column("session_id", Id, nullable=False),
        sa.Column("agent", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("joined_at", Ts, nullable=False),
        sa.PrimaryKeyConstraint("session_id", "agent", name="pk_session_participants"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            ondelete="CASCADE",
            name="fk_session_participants_session_id_sessions",
        ),
        sa.CheckConstraint(
            _one_of("role", ("owner", "collaborator", "reader", "former_owner")),
            name="ck_session_participants_role",
        ),
    )
    op.create_index("ix_session_participants_agent", "session_participants", ["agent"])

    op.create_table(
        "context_entries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("session_id", Id, nullable=False),
        sa.Column("sequence_number", sa.BigInteger, nullable=False),
        sa.Column("context_type", sa.String(16), nullable=False),
        sa.Column("agent", sa.String(128), nullable=False),
        sa.Column("meta", Json, nullable=False),
        sa.Column("content_bytes", sa.Integer, nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("content_codec", sa.String(8), nullable=False, server_default="plain"),
        sa.Column("content_packed", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_context_entries"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], ondelete="CASCADE", name="fk_context_entries_session_id_sessions"
        ),
        sa.UniqueConstraint("session_id", "sequence_number", name="uq_context_entries_session_sequence"),
        sa.UniqueConstraint("session_id", "idempotency_key", name="uq_context_entries_session_idempotency"),
        sa.CheckConstraint(
            _one_of("context_type", ("message", "file", "tool_call", "system")),
            name="ck_context_entries_context_type",
        ),
        sa.CheckConstraint("sequence_number >= 1", name="ck_context_entries_sequence_number"),
    )
    op.create_index(
        "ix_context_entries_session_type_seq",
        "context_entries",
        ["session_id", "context_type", "sequence_number"],
    )

    op.create_table(
        "handoffs",
        sa.Column("handoff_id", sa.String(64), nullable=False),
        sa.Column("session_id", Id, nullable=False),
        sa.Column("source_agent", sa.String(128), nullable=False),
        sa.Column("target_agent", sa.String(128), nullable=False),
        sa.Column("handoff_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request_data", Json, nullable=False),
        sa.Column("brief", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("instructions", sa.Text, nullable=False),
        sa.Column("token_budget", sa.Integer, nullable=False),
        sa.Column("brief_tokens", sa.Integer, nullable=False),
        sa.Column("up_to_sequence", sa.BigInteger, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.PrimaryKeyConstraint("handoff_id", name="pk_handoffs"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], ondelete="CASCADE", name="fk_handoffs_session_id_sessions"
        ),
        sa.CheckConstraint(
            _one_of("handoff_type", ("context_transfer", "full_handoff", "collaboration")),
            name="ck_handoffs_handoff_type",
        ),
        sa.CheckConstraint(_one_of("status", ("pending", "accepted", "completed")), name="ck_handoffs_status"),
    )
    op.create_index("ix_handoffs_session_id", "handoffs", ["session_id"])
    op.create_index("ix_handoffs_target_status", "handoffs", ["target_agent", "status"])

    op.create_table(
        "lifecycle_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("session_id", Id, nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("details", Json, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lifecycle_events"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            ondelete="CASCADE",
            name="fk_lifecycle_events_session_id_sessions",
        ),
    )
    op.create_index("ix_lifecycle_events_session_id", "lifecycle_events", ["session_id", "id"])

    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("acquired_at", Ts, nullable=False),
        sa.Column("expires_at", Ts, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_job_leases"),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(40), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("started_at", Ts, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("examined", sa.Integer, nullable=False),
        sa.Column("changed", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("details", Json, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_job_runs"),
    )
    op.create_index("ix_job_runs_job_id", "job_runs", ["job", "id"])


def downgrade() -> None:
    for table in (
        "job_runs",
        "job_leases",
        "lifecycle_events",
        "handoffs",
        "context_entries",
        "session_participants",
        "sessions",
    ):
        op.drop_table(table)
