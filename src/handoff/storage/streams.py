"""Stored SSE events of resumable HTTP streams (one table on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from handoff.domain.streams import StreamOwner
from handoff.storage.db import Db
from handoff.storage.tables import stream_events

_c = stream_events.c


class SqlStreamEventRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def add(
        self, *, stream_key: str, stream_id: str, owner: StreamOwner, payload: str | None, size: int, now: datetime
    ) -> int:
        result = await self._db.execute(
            stream_events.insert()
            .values(
                stream_key=stream_key,
                stream_id=stream_id,
                session_hash=owner.session,
                agent=owner.agent,
                payload=payload,
                payload_bytes=size,
                created_at=now,
            )
            .returning(_c.id)
        )
        return int(result.scalar_one())

    async def find_stream(self, stream_key: str, owner: StreamOwner, *, since: datetime) -> str | None:
        """The transport's stream id for `stream_key`, when `owner` wrote it and it has not expired."""
        rows = await self._db.fetch_mappings(
            sa.select(_c.stream_id)
            .where(
                _c.stream_key == stream_key,
                _c.session_hash == owner.session,
                _owned_by(owner.agent),
                _c.created_at >= since,
            )
            .order_by(_c.id.desc())
            .limit(1)
        )
        return str(rows[0]["stream_id"]) if rows else None

    async def list_after(
        self, stream_key: str, owner: StreamOwner, *, after_id: int, since: datetime, limit: int
    ) -> list[tuple[int, str | None]]:
        rows = await self._db.fetch_mappings(
            sa.select(_c.id, _c.payload)
            .where(
                _c.stream_key == stream_key,
                _c.session_hash == owner.session,
                _owned_by(owner.agent),
                _c.id > after_id,
                _c.created_at >= since,
            )
            .order_by(_c.id)
            .limit(limit)
        )
        return [(int(r["id"]), r["payload"]) for r in rows]

    async def trim_stream(self, stream_key: str, *, keep: int) -> int:
        """Delete all but the newest `keep` events of one stream."""
        newest_dropped = (
            sa.select(_c.id).where(_c.stream_key == stream_key).order_by(_c.id.desc()).offset(keep).limit(1)
        ).scalar_subquery()
        result = await self._db.execute(
            stream_events.delete().where(_c.stream_key == stream_key, _c.id <= newest_dropped)
        )
        return int(result.rowcount or 0)

    async def delete_before(self, cutoff: datetime, *, limit: int) -> int:
        """Delete up to `limit` events stored before `cutoff`, oldest first."""
        oldest = sa.select(_c.id).where(_c.created_at < cutoff).order_by(_c.id).limit(limit)
        result = await self._db.execute(stream_events.delete().where(_c.id.in_(oldest)))
        return int(result.rowcount or 0)

    async def newest_over_budget(self, max_bytes: int) -> int | None:
        """The newest event id whose deletion (with everything older) brings the total under `max_bytes`."""
        running = sa.func.sum(_c.payload_bytes).over(order_by=_c.id.desc()).label("running")
        totals = sa.select(_c.id, running).subquery()
        rows = await self._db.fetch_mappings(
            sa.select(totals.c.id).where(totals.c.running > max_bytes).order_by(totals.c.id.desc()).limit(1)
        )
        return int(rows[0]["id"]) if rows else None

    async def delete_up_to(self, last_id: int, *, limit: int) -> int:
        """Delete up to `limit` of the oldest events with id ≤ `last_id`."""
        oldest = sa.select(_c.id).where(_c.id <= last_id).order_by(_c.id).limit(limit)
        result = await self._db.execute(stream_events.delete().where(_c.id.in_(oldest)))
        return int(result.rowcount or 0)


def _owned_by(agent: str | None) -> sa.ColumnElement[bool]:
    return _c.agent.is_(None) if agent is None else _c.agent == agent
