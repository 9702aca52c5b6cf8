"""Revision 0003 on a database that already holds handoffs: old rows stay valid and mean what they meant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from handoff.config import Settings
from handoff.container import Container
from handoff.domain.models import HandoffStatus
from handoff.storage import migrate
from handoff.storage.engine import WRITE_OPTION
from handoff.storage.revision import SCHEMA_HEAD
from handoff.storage.tables import handoffs, sessions

pytestmark = pytest.mark.anyio

MADE = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


async def _old_handoff(container: Container, handoff_id: str) -> None:
    """A session and a handoff as a 0002 server wrote them (no answer columns, status pending)."""
    async with container.engine.begin() as conn:
        session_id = (
            await conn.execute(
                sessions.insert()
                .values(
                    session_key=f"old-{handoff_id}",
                    source_agent="a",
                    owner_agent="b",
                    status="active",
                    meta={},
                    ttl_seconds=3600,
                    created_at=MADE,
                    updated_at=MADE,
                    last_activity_at=MADE,
                    expires_at=MADE + timedelta(days=3650),
                    status_changed_at=MADE,
                )
                .returning(sessions.c.id)
            )
        ).scalar_one()
        await conn.execute(
            handoffs.insert().values(
                handoff_id=handoff_id,
                session_id=session_id,
                source_agent="a",
                target_agent="b",
                handoff_type="full_handoff",
                status="pending",
                request_data={},
                brief="# old brief",
                summary="old",
                instructions="read it",
                token_budget=2000,
                brief_tokens=3,
                up_to_sequence=0,
                created_at=MADE,
            )
        )


async def _downgrade(container: Container, revision: str) -> None:
    def run(conn: Connection) -> None:
        command.downgrade(migrate._config(conn), revision)

    async with container.engine.connect() as conn:
        await conn.execution_options(**{WRITE_OPTION: True})
        async with conn.begin():
            await conn.run_sync(run)


async def test_handoffs_made_before_answers_existed_become_accepted_and_never_expire(settings: Settings) -> None:
    settings.db.auto_migrate = False
    schema = settings.db.schema_name
    container = Container.build(settings)
    try:
        assert (await migrate.upgrade(container.engine, "0002", schema=schema))[1] == "0002"
        await _old_handoff(container, "a" * 32)
        assert (await migrate.upgrade(container.engine, schema=schema))[1] == SCHEMA_HEAD

        view = await container.handoffs.get("a" * 32)
        progress = view.handoff.progress
        assert progress.status is HandoffStatus.ACCEPTED
        assert (progress.accepted_at, progress.accepted_by) == (MADE, None)
        assert view.handoff.target_prior_role is None and view.accept_before is None
        assert (await container.lifecycle.run("expire_handoffs")).examined == 0  # nothing to give back
        assert (await container.sessions.get("old-" + "a" * 32)).session.owner_agent == "b"

        # The new states are allowed by the database, anything else still is not.
        async with container.engine.begin() as conn:
            await conn.execute(handoffs.update().values(status="declined", decline_reason="no"))
        with pytest.raises(sa.exc.IntegrityError):
            async with container.engine.begin() as conn:
                await conn.execute(handoffs.update().values(status="lost"))

        # And back: 0002 knows no declined handoff; it was not taken up, so it reads as pending.
        await _downgrade(container, "0002")
        async with container.engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT status FROM handoffs"))).all()
        assert [r[0] for r in rows] == ["pending"]
        assert (await migrate.upgrade(container.engine, schema=schema))[1] == SCHEMA_HEAD
        assert await container.schema_drift() == []
    finally:
        await container.close()
