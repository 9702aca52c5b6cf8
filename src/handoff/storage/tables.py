"""The schema, as SQLAlchemy Core tables. Migrations under migrations/ create exactly this."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from handoff.domain.models import ContextType, HandoffStatus, HandoffType, ParticipantRole, SessionStatus

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)

# The CHECK constraints' value lists come from the domain's enums: one source for each vocabulary.
SESSION_STATUSES = tuple(s.value for s in SessionStatus)
CONTEXT_TYPES = tuple(t.value for t in ContextType)
HANDOFF_TYPES = tuple(t.value for t in HandoffType)
HANDOFF_STATUSES = tuple(s.value for s in HandoffStatus)
ROLES = tuple(r.value for r in ParticipantRole)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("session_key", sa.String(128), nullable=False, unique=True),
    sa.Column("source_agent", sa.String(128), nullable=False),
    sa.Column("owner_agent", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("meta", Json, nullable=False),
    sa.Column("ttl_seconds", sa.Integer, nullable=False),
    # The per-session sequence counter: bumped in the append transaction, never MAX()+1.
    sa.Column("entry_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("content_bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("last_activity_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    # The running brief digest (a few KiB, bounded): rewritten by the append's counter UPDATE, so an
    # append costs one UPDATE here. Listing queries leave this column out.
    sa.Column("digest", sa.Text, nullable=False, server_default="{}"),
    sa.Column("retention_policy", sa.String(32), nullable=False, server_default="standard"),
    # When the session reached its current status: the clock archive and purge deadlines run on.
    sa.Column("status_changed_at", Timestamp, nullable=False),
    sa.CheckConstraint(_one_of("status", SESSION_STATUSES), name="status"),
    sa.CheckConstraint("entry_count >= 0", name="entry_count"),
    sa.Index("ix_sessions_status_id", "status", "id"),
    # No index on last_activity_at / expires_at: every append rewrites them, and leaving them
    # unindexed keeps that UPDATE a HOT (in-place) update on PostgreSQL. The jobs that look for
    # idle or expired sessions scan by status instead, once a minute.
    sa.Index("ix_sessions_status_changed", "status", "status_changed_at"),
    sa.Index("ix_sessions_owner_agent", "owner_agent"),
    # Room on each page for the in-place row versions that appends create.
    postgresql_with={"fillfactor": 70},
)

session_participants = sa.Table(
    "session_participants",
    metadata,
    sa.Column("session_id", Id, sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("agent", sa.String(128), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("joined_at", Timestamp, nullable=False),
    sa.CheckConstraint(_one_of("role", ROLES), name="role"),
    sa.Index("ix_session_participants_agent", "agent"),
)

context_entries = sa.Table(
    "context_entries",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("session_id", Id, sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("sequence_number", sa.BigInteger, nullable=False),
    sa.Column("context_type", sa.String(16), nullable=False),
    sa.Column("agent", sa.String(128), nullable=False),
    sa.Column("meta", Json, nullable=False),
    sa.Column("content_bytes", sa.Integer, nullable=False),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    # Archived sessions keep content zlib-compressed here (content is then ''); see storage/packing.py.
    sa.Column("content_codec", sa.String(8), nullable=False, server_default="plain"),
    sa.Column("content_packed", sa.LargeBinary, nullable=True),
    sa.UniqueConstraint("session_id", "sequence_number", name="uq_context_entries_session_sequence"),
    sa.UniqueConstraint("session_id", "idempotency_key", name="uq_context_entries_session_idempotency"),
    sa.CheckConstraint(_one_of("context_type", CONTEXT_TYPES), name="context_type"),
    sa.CheckConstraint("sequence_number >= 1", name="sequence_number"),
    sa.Index("ix_context_entries_session_type_seq", "session_id", "context_type", "sequence_number"),
)

handoffs = sa.Table(
    "handoffs",
    metadata,
    sa.Column("handoff_id", sa.String(64), primary_key=True),
    sa.Column("session_id", Id, sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("source_agent", sa.String(128), nullable=False),
    sa.Column("target_agent", sa.String(128), nullable=False),
    sa.Column("handoff_type", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("request_data", Json, nullable=False),
    # The source agent's own note (goal, state, decisions …), as validated; NULL when none was given.
    sa.Column("note", Json, nullable=True),
    sa.Column("brief", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("instructions", sa.Text, nullable=False),
    sa.Column("token_budget", sa.Integer, nullable=False),
    sa.Column("brief_tokens", sa.Integer, nullable=False),
    sa.Column("up_to_sequence", sa.BigInteger, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    # The target's answers (see domain/lifecycle.py); each moves `status` with a conditional UPDATE.
    sa.Column("accepted_at", Timestamp, nullable=True),
    sa.Column("accepted_by", sa.String(128), nullable=True),
    sa.Column("completed_at", Timestamp, nullable=True),
    sa.Column("completion_summary", sa.Text, nullable=True),
    sa.Column("declined_at", Timestamp, nullable=True),
    sa.Column("decline_reason", sa.Text, nullable=True),
    sa.Column("expired_at", Timestamp, nullable=True),
    # The target's role before the handoff (NULL: none), restored when it is declined or expires.
    sa.Column("target_prior_role", sa.String(16), nullable=True),
    sa.CheckConstraint(_one_of("handoff_type", HANDOFF_TYPES), name="handoff_type"),
    sa.CheckConstraint(_one_of("status", HANDOFF_STATUSES), name="status"),
    sa.CheckConstraint(_one_of("target_prior_role", ROLES), name="target_prior_role"),
    # Listings are newest first, keyset-paginated on (created_at, handoff_id), per filter: the inbox
    # (target + status), what an agent handed off, a session's handoffs, by status (and the expiry
    # job), and everything.
    sa.Index("ix_handoffs_target_status_created", "target_agent", "status", "created_at", "handoff_id"),
    sa.Index("ix_handoffs_source_created", "source_agent", "created_at", "handoff_id"),
    sa.Index("ix_handoffs_session_created", "session_id", "created_at", "handoff_id"),
    sa.Index("ix_handoffs_status_created", "status", "created_at", "handoff_id"),
    sa.Index("ix_handoffs_created", "created_at", "handoff_id"),
)

lifecycle_events = sa.Table(
    "lifecycle_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("session_id", Id, sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("from_status", sa.String(16), nullable=True),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("details", Json, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Index("ix_lifecycle_events_session_id", "session_id", "id"),
)

# How far each imported log file has been read, per session: a growing log (a hook, `handoff
# watch`) resumes here instead of re-reading from the start. Updated in the transaction that
# stores the entries read, so the offset never runs ahead of what is stored.
import_sources = sa.Table(
    "import_sources",
    metadata,
    sa.Column("session_id", Id, sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("source", sa.String(1024), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),  # of the file's head: a replaced file starts over
    sa.Column("byte_offset", sa.BigInteger, nullable=False),
    sa.Column("line_count", sa.BigInteger, nullable=False),
    sa.Column("records", sa.BigInteger, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.CheckConstraint("byte_offset >= 0", name="byte_offset"),
)

# Leases for background jobs on SQLite (PostgreSQL uses advisory locks instead; see storage/locks.py).
job_leases = sa.Table(
    "job_leases",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("acquired_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
)

# One row per background job run: what it examined, changed, failed on, and how long it took.
job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(40), nullable=False),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("examined", sa.Integer, nullable=False),
    sa.Column("changed", sa.Integer, nullable=False),
    sa.Column("errors", sa.Integer, nullable=False),
    sa.Column("details", Json, nullable=False),
    sa.Index("ix_job_runs_job_id", "job", "id"),
)

# Bearer tokens for HTTP (HANDOFF_AUTH__MODE=tokens): only the SHA-256 of each secret is kept.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("token_id", sa.String(64), primary_key=True),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("agent", sa.String(128), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=True),
    sa.Column("revoked_at", Timestamp, nullable=True),
)

# SSE events kept so a client whose stream dropped can resume it (http/streams.py). Short-lived:
# deleted after `HANDOFF_STREAMS__RETENTION_SECONDS` and beyond the per-stream and total bounds.
stream_events = sa.Table(
    "stream_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("stream_key", sa.String(24), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("stream_id", sa.Text, nullable=False),
    sa.Column("session_hash", sa.String(64), nullable=False),
    sa.Column("agent", sa.String(128), nullable=True),
    sa.Column("payload", sa.Text, nullable=True),
    sa.Column("payload_bytes", sa.Integer, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    # A stream's events are numbered by its writer (one replica); the number is the event id's tail.
    sa.UniqueConstraint("stream_key", "seq", name="uq_stream_events_stream_key_seq"),
    sa.Index("ix_stream_events_created_at", "created_at"),
)
