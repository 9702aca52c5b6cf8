"""Set-wise queries for the lifecycle jobs: find what is due, pack, delete in chunks, repair, record runs.

Every method touches a bounded number of rows, so a job never holds a long lock: the services call
them in small transactions and loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from handoff.domain.models import SessionStatus
from handoff.storage.db import Db
from handoff.storage.packing import PLAIN, ZLIB, pack_content
from handoff.storage.repositories import utc
from handoff.storage.tables import (
    context_entries,
    handoffs,
    job_runs,
    lifecycle_events,
    session_participants,
    sessions,
)

DUE_COLUMNS = {
    "last_activity_at": sessions.c.last_activity_at,
    "expires_at": sessions.c.expires_at,
    "status_changed_at": sessions.c.status_changed_at,
}


class SqlMaintenanceRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def due_session_keys(
        self,
        *,
        statuses: Sequence[SessionStatus],
        column: str,
        before: datetime,
        limit: int,
        policies: Sequence[str] | None = None,
    ) -> list[str]:
        due = DUE_COLUMNS[column]
        query = (
            sa.select(sessions.c.session_key)
            .where(sessions.c.status.in_([s.value for s in statuses]), due <= before)
            .order_by(due, sessions.c.id)
            .limit(limit)
        )
        if policies is not None:
            query = query.where(sessions.c.retention_policy.in_(list(policies)))
        return [row[0] for row in await self._db.execute(query)]

    async def pack_entries(self, session_id: int, *, after_sequence: int, limit: int) -> int:
        """Compress the next `limit` entries after `after_sequence`; return the last sequence looked at.

        Walks the (session_id, sequence_number) index forward, so each chunk reads only its own rows.
        Returns `after_sequence` unchanged when there is nothing left.
        """
        rows = await self._db.fetch_mappings(
            sa.select(context_entries.c.id, context_entries.c.sequence_number, context_entries.c.content)
            .where(
                context_entries.c.session_id == session_id,
                context_entries.c.sequence_number > after_sequence,
                context_entries.c.content_codec == PLAIN,
            )
            .order_by(context_entries.c.sequence_number)
            .limit(limit)
        )
        for row in rows:
            await self._db.execute(
                context_entries.update()
                .where(context_entries.c.id == row["id"])
                .values(content="", content_codec=ZLIB, content_packed=pack_content(row["content"]))
            )
        return int(rows[-1]["sequence_number"]) if rows else after_sequence

    async def delete_entries(self, session_id: int, *, limit: int) -> int:
        ids = sa.select(context_entries.c.id).where(context_entries.c.session_id == session_id).limit(limit)
        result = await self._db.execute(context_entries.delete().where(context_entries.c.id.in_(ids)))
        return int(result.rowcount)

    async def delete_session(self, session_id: int) -> None:
        # Children first: correct without relying on ON DELETE CASCADE being enforced.
        for table in (handoffs, lifecycle_events, session_participants):
            await self._db.execute(table.delete().where(table.c.session_id == session_id))
        await self._db.execute(sessions.delete().where(sessions.c.id == session_id))

    # -- repair ----------------------------------------------------------------------------------
    async def delete_orphans(self) -> dict[str, int]:
        """Rows whose session no longer exists (possible only if foreign keys were not enforced).

        PostgreSQL always enforces our foreign keys, so there is nothing to find and the full scans
        are skipped; a SQLite file may have been written by a tool that left them off.
        """
        removed: dict[str, int] = {}
        if self._db.dialect != "sqlite":
            return removed
        live = sa.select(sessions.c.id)
        for name, table in (
            ("entries", context_entries),
            ("handoffs", handoffs),
            ("events", lifecycle_events),
            ("participants", session_participants),
        ):
            result = await self._db.execute(table.delete().where(table.c.session_id.not_in(live)))
            removed[name] = int(result.rowcount)
        return removed

    async def sessions_with_wrong_counters(self, *, limit: int) -> list[tuple[int, str, int, int]]:
        """(id, key, stored count, true count) where the counter disagrees with the entries."""
        true_count = (
            sa.select(sa.func.coalesce(sa.func.max(context_entries.c.sequence_number), 0))
            .where(context_entries.c.session_id == sessions.c.id)
            .scalar_subquery()
        )
        query = (
            sa.select(sessions.c.id, sessions.c.session_key, sessions.c.entry_count, true_count.label("actual"))
            .where(sessions.c.entry_count != true_count)
            .limit(limit)
        )
        found = []
        for row in await self._db.execute(query):
            session_id, key, stored, actual = tuple(row)
            found.append((int(session_id), str(key), int(stored), int(actual)))
        return found

    async def fix_counters(self, session_id: int, *, entry_count: int, digest_json: str) -> None:
        content_bytes = (
            sa.select(sa.func.coalesce(sa.func.sum(context_entries.c.content_bytes), 0))
            .where(context_entries.c.session_id == session_id)
            .scalar_subquery()
        )
        await self._db.execute(
            sessions.update()
            .where(sessions.c.id == session_id)
            .values(entry_count=entry_count, content_bytes=content_bytes, digest=digest_json)
        )

    # -- job runs --------------------------------------------------------------------------------
    async def add_job_run(
        self,
        *,
        job: str,
        holder: str,
        started_at: datetime,
        duration_ms: int,
        examined: int,
        changed: int,
        errors: int,
        details: dict[str, Any],
    ) -> None:
        await self._db.execute(
            job_runs.insert().values(
                job=job,
                holder=holder,
                started_at=started_at,
                duration_ms=duration_ms,
                examined=examined,
                changed=changed,
                errors=errors,
                details=details,
            )
        )

    async def recent_job_runs(self, *, job: str | None, limit: int) -> list[dict[str, Any]]:
        query = sa.select(job_runs).order_by(job_runs.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(job_runs.c.job == job)
        rows = await self._db.fetch_mappings(query)
        return [{**dict(r), "started_at": utc(r["started_at"])} for r in rows]
