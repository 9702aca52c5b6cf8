"""Handoffs are answered: accepted, completed, declined (with a reason) or expired; listed newest first.

New columns record each answer and when it came, and the target's role before the handoff (so a
declined or expired handoff gives back exactly what it granted). The status vocabulary grows by
`declined` and `expired`, and the listing indexes end in (created_at, handoff_id) for keyset pages.

Existing rows: before this revision a handoff took effect when it was made and nobody answered it,
so every stored handoff is marked `accepted` (accepted_at = created_at, accepted_by unknown). Left
`pending`, years of old handoffs would fill every agent's inbox, and the expiry job would hand the
sessions of old full handoffs back to their previous owners a week after the upgrade.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Ts = sa.DateTime(timezone=True)

OLD_STATUSES = ("pending", "accepted", "completed")
STATUSES = ("pending", "accepted", "completed", "declined", "expired")
ROLES = ("owner", "collaborator", "reader", "former_owner")
OLD_INDEXES = {"ix_handoffs_session_id": ["session_id"], "ix_handoffs_target_status": ["target_agent", "status"]}
INDEXES = {
    "ix_handoffs_target_status_created": ["target_agent", "status", "created_at", "handoff_id"],
    "ix_handoffs_source_created": ["source_agent", "created_at", "handoff_id"],
    "ix_handoffs_session_created": ["session_id", "created_at", "handoff_id"],
    "ix_handoffs_status_created": ["status", "created_at", "handoff_id"],
    "ix_handoffs_created": ["created_at", "handoff_id"],
}
NEW_COLUMNS = (
    ("accepted_at", Ts),
    ("accepted_by", sa.String(128)),
    ("completed_at", Ts),
    ("completion_summary", sa.Text()),
    ("declined_at", Ts),
    ("decline_reason", sa.Text()),
    ("expired_at", Ts),
    ("target_prior_role", sa.String(16)),
)


# The names 0001 gave the CHECK constraints (the naming convention was applied to names that were
# already full), kept so both revisions agree; op.f() stops the convention being applied again.
STATUS_CHECK = "ck_handoffs_ck_handoffs_status"
TYPE_CHECK = "ck_handoffs_ck_handoffs_handoff_type"
ROLE_CHECK = "ck_handoffs_target_prior_role"


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _handoffs_at_0002() -> sa.Table:
    """The table as 0001 and 0002 left it: SQLite rebuilds it from this (no reflection guesswork)."""
    meta = sa.MetaData()
    sa.Table("sessions", meta, sa.Column("id", Id, primary_key=True))
    return sa.Table(
        "handoffs",
        meta,
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
        sa.Column("note", Json, nullable=True),
        sa.PrimaryKeyConstraint("handoff_id", name="pk_handoffs"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], ondelete="CASCADE", name="fk_handoffs_session_id_sessions"
        ),
        sa.CheckConstraint(
            _one_of("handoff_type", ("context_transfer", "full_handoff", "collaboration")), name=TYPE_CHECK
        ),
        sa.CheckConstraint(_one_of("status", OLD_STATUSES), name=STATUS_CHECK),
    )


def upgrade() -> None:
    for name in OLD_INDEXES:
        op.drop_index(name, table_name="handoffs")
    with op.batch_alter_table("handoffs", copy_from=_handoffs_at_0002()) as batch:
        for name, kind in NEW_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
        batch.drop_constraint(op.f(STATUS_CHECK), type_="check")
        batch.create_check_constraint(op.f(STATUS_CHECK), _one_of("status", STATUSES))
        batch.create_check_constraint(op.f(ROLE_CHECK), _one_of("target_prior_role", ROLES))
    op.execute("UPDATE handoffs SET status = 'accepted', accepted_at = created_at WHERE status = 'pending'")
    for name, columns in INDEXES.items():
        op.create_index(name, "handoffs", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="handoffs")
    # The old vocabulary has no declined or expired: those handoffs were not taken up.
    op.execute("UPDATE handoffs SET status = 'pending' WHERE status IN ('declined', 'expired')")
    with op.batch_alter_table("handoffs") as batch:
        batch.drop_constraint(op.f(ROLE_CHECK), type_="check")
        batch.drop_constraint(op.f(STATUS_CHECK), type_="check")
        batch.create_check_constraint(op.f(STATUS_CHECK), _one_of("status", OLD_STATUSES))
        for name, _ in reversed(NEW_COLUMNS):
            batch.drop_column(name)
    for name, columns in OLD_INDEXES.items():
        op.create_index(name, "handoffs", columns)
