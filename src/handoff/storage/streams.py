"""Stored SSE events of resumable HTTP streams (one table on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from handoff.domain.streams import NewStreamEvent, StreamOwner
from handoff.storage.db import Db
from handoff.storage.tables import stream_events

_c = stream_events.c


class SqlStreamEventRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def add_many(self, events: Sequence[NewStreamEvent], *, now: datetime) -> None:
        await self._db.execute(
            stream_events.insert(),
            [
                {
                    "stream_key": e.stream_key,
                    "seq": e.seq,
                    "stream_id": e.stream_id,
                    "session_hash": e.owner.session,
                    "agent": e.owner.agent,
                    "payload": e.payload,
                    "payload_bytes": e.size,
                    "created_at": now,
                }
                for e in events
            ],
        )

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
            .order_by(_c.seq.desc())
            .limit(1)
        )
        return str(rows[0]["stream_id"]) if rows else None

    async def list_after(
        self, stream_key: str, owner: StreamOwner, *, after_seq: int, since: datetime, limit: int
    ) -> list[tuple[int, str | None]]:
        rows = await self._db.fetch_mappings(
            sa.select(_c.seq, _c.payload)
            .where(
                _c.stream_key == stream_key,
                _c.session_hash == owner.session,
                _owned_by(owner.agent),
                _c.seq > after_seq,
                _c.created_at >= since,
            )
            .order_by(_c.seq)
            .limit(limit)
        )
        return [(int(r["seq"]), r["payload"]) for r in rows]

    async def trim_stream(self, stream_key: str, *, up_to_seq: int) -> int:
        """Delete the stream's events numbered `up_to_seq` and below."""
        result = await self._db.execute(stream_events.delete().where(_c.stream_key == stream_key, _c.seq <= up_to_seq))
        return int(result.rowcount or 0)

    async def delete_before(self, cutoff: datetime, *, limit: int) -> int:
        """Delete up to `limit` events stored before `cutoff`, oldest first."""
        oldest = sa.select(_c.id).where(_c.created_at < cutoff).order_by(_c.id).limit(limit)
        result = await self._db.execute(stream_events.delete().where(_c.id.in_(oldest)))
        return int(result.rowcount or 0)

    async def newest_over_budget(self, max_bytes: int) -> int | None:
        """The newest row whose deletion (with every older one) brings the total under `max_bytes`."""
        running = sa.func.sum(_c.payload_bytes).over(order_by=_c.id.desc()).label("running")
        totals = sa.select(_c.id, running).subquery()
        rows = await self._db.fetch_mappings(
            sa.select(totals.c.id).where(totals.c.running > max_bytes).order_by(totals.c.id.desc()).limit(1)
        )
        return int(rows[0]["id"]) if rows else None

    async def delete_up_to(self, last_id: int, *, limit: int) -> int:
        """Delete up to `limit` of the oldest rows with id ≤ `last_id`."""
        oldest = sa.select(_c.id).where(_c.id <= last_id).order_by(_c.id).limit(limit)
        result = await self._db.execute(stream_events.delete().where(_c.id.in_(oldest)))
        return int(result.rowcount or 0)


def _owned_by(agent: str | None) -> sa.ColumnElement[bool]:
    return _c.agent.is_(None) if agent is None else _c.agent == agent
