"""The handoff repository: handoff records, their answers, listings, and the names clients complete."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from handoff.domain.models import Handoff, HandoffHeader, HandoffProgress, HandoffStatus, HandoffType, ParticipantRole
from handoff.errors import NotFound
from handoff.storage.db import Db
from handoff.storage.tables import handoffs, session_participants, sessions

_PROGRESS_COLUMNS = [
    handoffs.c.status,
    handoffs.c.accepted_at,
    handoffs.c.accepted_by,
    handoffs.c.completed_at,
    handoffs.c.completion_summary,
    handoffs.c.declined_at,
    handoffs.c.decline_reason,
    handoffs.c.expired_at,
]
# What a listing shows: no brief, instructions, note or request data (each may be large).
_HEADER_COLUMNS = [
    handoffs.c.handoff_id,
    sessions.c.session_key,
    handoffs.c.source_agent,
    handoffs.c.target_agent,
    handoffs.c.handoff_type,
    handoffs.c.summary,
    handoffs.c.created_at,
    *_PROGRESS_COLUMNS,
]
_NEWEST_FIRST = (handoffs.c.created_at.desc(), handoffs.c.handoff_id.desc())


class SqlHandoffRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def add(self, handoff: Handoff) -> None:
        await self._db.execute(
            handoffs.insert().values(
                handoff_id=handoff.handoff_id,
                session_id=handoff.session_id,
                source_agent=handoff.source_agent,
                target_agent=handoff.target_agent,
                handoff_type=handoff.handoff_type.value,
                request_data=handoff.request_data,
                note=handoff.note,
                brief=handoff.brief,
                summary=handoff.summary,
                instructions=handoff.instructions,
                token_budget=handoff.token_budget,
                brief_tokens=handoff.brief_tokens,
                up_to_sequence=handoff.up_to_sequence,
                created_at=handoff.created_at,
                target_prior_role=handoff.target_prior_role.value if handoff.target_prior_role else None,
                **handoff.progress.fields(),
            )
        )

    async def get(self, handoff_id: str) -> Handoff:
        query = (
            sa.select(handoffs, sessions.c.session_key)
            .join(sessions, sessions.c.id == handoffs.c.session_id)
            .where(handoffs.c.handoff_id == handoff_id)
        )
        row = (await self._db.execute(query)).mappings().first()
        if row is None:
            raise NotFound(f"no handoff with id '{handoff_id}'", {"handoff_id": handoff_id})
        return _handoff(row)

    async def find_progress(self, handoff_id: str) -> HandoffProgress | None:
        query = sa.select(*_PROGRESS_COLUMNS).where(handoffs.c.handoff_id == handoff_id)
        row = (await self._db.execute(query)).mappings().first()
        return None if row is None else _progress(row)

    async def set_progress(self, handoff_id: str, *, expected: HandoffStatus, progress: HandoffProgress) -> bool:
        # Conditional on the status read before: of two replicas answering at once, one updates a row
        # and the other none (PostgreSQL re-checks the WHERE after waiting for the first one's lock).
        result = await self._db.execute(
            handoffs.update()
            .where(handoffs.c.handoff_id == handoff_id, handoffs.c.status == expected.value)
            .values(**progress.fields())
        )
        return result.rowcount == 1

    async def list_page(
        self,
        *,
        target_agent: str | None,
        source_agent: str | None,
        status: HandoffStatus | None,
        session_id: int | None,
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[HandoffHeader]:
        query = (
            sa.select(*_HEADER_COLUMNS)
            .join(sessions, sessions.c.id == handoffs.c.session_id)
            .order_by(*_NEWEST_FIRST)
            .limit(limit)
        )
        if target_agent is not None:
            query = query.where(handoffs.c.target_agent == target_agent)
        if source_agent is not None:
            query = query.where(handoffs.c.source_agent == source_agent)
        if status is not None:
            query = query.where(handoffs.c.status == status.value)
        if session_id is not None:
            query = query.where(handoffs.c.session_id == session_id)
        if before is not None:
            at, handoff_id = before
            position = sa.tuple_(
                sa.bindparam(None, at, type_=handoffs.c.created_at.type),
                sa.bindparam(None, handoff_id, type_=handoffs.c.handoff_id.type),
            )
            query = query.where(sa.tuple_(handoffs.c.created_at, handoffs.c.handoff_id) < position)
        rows = await self._db.fetch_mappings(query)
        return [_header(r) for r in rows]

    async def pending_created_before(self, cutoff: datetime, *, limit: int) -> list[str]:
        query = (
            sa.select(handoffs.c.handoff_id)
            .where(handoffs.c.status == HandoffStatus.PENDING.value, handoffs.c.created_at <= cutoff)
            .order_by(handoffs.c.created_at, handoffs.c.handoff_id)
            .limit(limit)
        )
        return [str(r["handoff_id"]) for r in await self._db.fetch_mappings(query)]

    async def count_by_type_and_status(self) -> dict[tuple[HandoffType, HandoffStatus], int]:
        query = sa.select(handoffs.c.handoff_type, handoffs.c.status, sa.func.count().label("n")).group_by(
            handoffs.c.handoff_type, handoffs.c.status
        )
        rows = (await self._db.execute(query)).mappings()
        return {(HandoffType(r["handoff_type"]), HandoffStatus(r["status"])): int(r["n"]) for r in rows}

    async def list_for_session(self, session_id: int, *, limit: int) -> list[Handoff]:
        query = (
            sa.select(handoffs, sessions.c.session_key)
            .join(sessions, sessions.c.id == handoffs.c.session_id)
            .where(handoffs.c.session_id == session_id)
            .order_by(handoffs.c.created_at)
            .limit(limit)
        )
        return [_handoff(r) for r in (await self._db.execute(query)).mappings()]

    # -- names a client may complete (prefix match, bounded) -----------------------------------------
    async def session_keys_starting(self, prefix: str, *, limit: int) -> list[str]:
        column = sessions.c.session_key
        query = sa.select(column).where(self._starts(column, prefix)).order_by(column).limit(limit)
        return [str(r["session_key"]) for r in await self._db.fetch_mappings(query)]

    async def agents_starting(self, prefix: str, *, limit: int) -> list[str]:
        # Every agent that was ever a source or target is a participant of that session.
        column = session_participants.c.agent
        query = sa.select(column).distinct().where(self._starts(column, prefix)).order_by(column).limit(limit)
        return [str(r["agent"]) for r in await self._db.fetch_mappings(query)]

    async def handoff_ids_starting(self, prefix: str, *, pending_for: str | None, limit: int) -> list[str]:
        column = handoffs.c.handoff_id
        query = sa.select(column).where(self._starts(column, prefix)).limit(limit)
        if pending_for is None:
            query = query.order_by(column)
        else:
            query = query.where(
                handoffs.c.target_agent == pending_for, handoffs.c.status == HandoffStatus.PENDING.value
            ).order_by(*_NEWEST_FIRST)
        return [str(r["handoff_id"]) for r in await self._db.fetch_mappings(query)]

    def _starts(self, column: sa.ColumnElement[str], prefix: str) -> sa.ColumnElement[bool]:
        if not prefix:
            return sa.true()
        if self._db.dialect == "sqlite":
            # SQLite's LIKE ignores case; a range on the (binary-collated) index is exact and uses it.
            last = ord(prefix[-1]) + 1
            if last < 0xD800:
                return sa.and_(column >= prefix, column < prefix[:-1] + chr(last))
            return sa.func.substr(column, 1, len(prefix)) == prefix
        # PostgreSQL: LIKE is exact whatever the collation; a range would not be under a linguistic one.
        return column.startswith(prefix, autoescape=True)


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back naive; every timestamp we store is UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _progress(row: Any) -> HandoffProgress:
    return HandoffProgress(
        status=HandoffStatus(row["status"]),
        accepted_at=_utc(row["accepted_at"]),
        accepted_by=row["accepted_by"],
        completed_at=_utc(row["completed_at"]),
        completion_summary=row["completion_summary"],
        declined_at=_utc(row["declined_at"]),
        decline_reason=row["decline_reason"],
        expired_at=_utc(row["expired_at"]),
    )


def _created(row: Any) -> datetime:
    created = _utc(row["created_at"])
    assert created is not None
    return created


def _header(row: Any) -> HandoffHeader:
    return HandoffHeader(
        handoff_id=row["handoff_id"],
        session_key=row["session_key"],
        source_agent=row["source_agent"],
        target_agent=row["target_agent"],
        handoff_type=HandoffType(row["handoff_type"]),
        summary=row["summary"],
        created_at=_created(row),
        progress=_progress(row),
    )


def _handoff(row: Any) -> Handoff:
    prior = row["target_prior_role"]
    return Handoff(
        handoff_id=row["handoff_id"],
        session_id=row["session_id"],
        session_key=row["session_key"],
        source_agent=row["source_agent"],
        target_agent=row["target_agent"],
        handoff_type=HandoffType(row["handoff_type"]),
        request_data=dict(row["request_data"] or {}),
        note=dict(row["note"]) if row.get("note") else None,
        brief=row["brief"],
        summary=row["summary"],
        instructions=row["instructions"],
        token_budget=row["token_budget"],
        brief_tokens=row["brief_tokens"],
        up_to_sequence=int(row["up_to_sequence"]),
        created_at=_created(row),
        progress=_progress(row),
        target_prior_role=ParticipantRole(prior) if prior else None,
    )
