"""Repositories: SQL for one aggregate each, run on the unit of work's connection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from handoff.domain.digest import Digest
from handoff.domain.models import (
    ContextEntry,
    ContextType,
    EntryExcerpt,
    ImportCursor,
    LifecycleEvent,
    NewEntry,
    Participant,
    ParticipantRole,
    Session,
    SessionStatus,
)
from handoff.errors import AlreadyExists, NotFound
from handoff.storage.db import Db
from handoff.storage.handoffs import SqlHandoffRepository as SqlHandoffRepository  # uow.py imports it from here
from handoff.storage.packing import unpack_content
from handoff.storage.search import insert_entries
from handoff.storage.tables import (
    context_entries,
    import_sources,
    lifecycle_events,
    session_participants,
    sessions,
)


def utc(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; every timestamp we store is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# Every session column but the digest: listings never pay for it.
_SESSION_COLUMNS = [c for c in sessions.c if c.name != "digest"]

# The append path runs these on every call; built once, so SQLAlchemy reuses their cache keys.
_SHARED = (
    sa.exists()
    .where(session_participants.c.session_id == sessions.c.id, session_participants.c.agent != sessions.c.owner_agent)
    .label("shared")
)
_LOCK_FOR_APPEND = (
    sa.select(*_SESSION_COLUMNS, sessions.c.digest, _SHARED)
    .where(sessions.c.session_key == sa.bindparam("b_key"))
    .with_for_update()
)
_RECORD_APPEND = (
    sessions.update()
    .where(sessions.c.id == sa.bindparam("b_id"))
    .values(
        entry_count=sessions.c.entry_count + sa.bindparam("b_count"),
        content_bytes=sessions.c.content_bytes + sa.bindparam("b_added"),
        last_activity_at=sa.bindparam("b_now"),
        updated_at=sa.bindparam("b_now"),
        expires_at=sa.bindparam("b_expires"),
        digest=sa.bindparam("b_digest"),
    )
    .returning(sessions.c.entry_count)
)
_PARTICIPANTS = (
    sa.select(session_participants)
    .where(session_participants.c.session_id.in_(sa.bindparam("b_ids", expanding=True)))
    .order_by(session_participants.c.joined_at, session_participants.c.agent)
)


class SqlSessionRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def add(
        self,
        *,
        session_key: str,
        source_agent: str,
        metadata: dict[str, Any],
        ttl_seconds: int,
        now: datetime,
        expires_at: datetime,
        retention_policy: str = "standard",
    ) -> Session:
        try:
            result = await self._db.execute(
                sessions.insert()
                .values(
                    session_key=session_key,
                    source_agent=source_agent,
                    owner_agent=source_agent,
                    status=SessionStatus.ACTIVE.value,
                    meta=metadata,
                    ttl_seconds=ttl_seconds,
                    entry_count=0,
                    content_bytes=0,
                    created_at=now,
                    updated_at=now,
                    last_activity_at=now,
                    expires_at=expires_at,
                    digest="{}",
                    retention_policy=retention_policy,
                    status_changed_at=now,
                )
                .returning(*_SESSION_COLUMNS)
            )
        except sa_exc.IntegrityError as exc:
            # The unique key decides between a duplicate and racing registrations.
            raise AlreadyExists(f"session '{session_key}' already exists") from exc
        session = _session(result.mappings().one())
        session.participants = []  # a new row: nobody has joined yet
        return session

    async def get(
        self, session_key: str, *, for_update: bool = False, with_digest: bool = False, with_participants: bool = True
    ) -> Session:
        session = await self.find(
            session_key, for_update=for_update, with_digest=with_digest, with_participants=with_participants
        )
        if session is None:
            raise NotFound(f"no session with key '{session_key}'", {"session_key": session_key})
        return session

    async def find(
        self, session_key: str, *, for_update: bool = False, with_digest: bool = False, with_participants: bool = True
    ) -> Session | None:
        if for_update and with_digest and not with_participants:
            row = (await self._db.execute(_LOCK_FOR_APPEND, {"b_key": session_key})).mappings().first()
        else:
            columns = [*_SESSION_COLUMNS, sessions.c.digest] if with_digest else _SESSION_COLUMNS
            query = sa.select(*columns).where(sessions.c.session_key == session_key)
            if for_update:
                query = query.with_for_update()
            row = (await self._db.execute(query)).mappings().first()
        if row is None:
            return None
        session = _session(row)
        if with_participants:
            await self._load_participants([session])
        return session

    async def find_by_id(self, session_id: int) -> Session | None:
        query = sa.select(*_SESSION_COLUMNS).where(sessions.c.id == session_id)
        row = (await self._db.execute(query)).mappings().first()
        if row is None:
            return None
        session = _session(row)
        await self._load_participants([session])
        return session

    async def load_participants(self, session: Session) -> None:
        await self._load_participants([session])

    async def list_sessions(
        self,
        *,
        statuses: Sequence[SessionStatus] | None,
        agent: str | None,
        after_id: int | None,
        limit: int,
    ) -> list[Session]:
        query = sa.select(*_SESSION_COLUMNS).order_by(sessions.c.id).limit(limit)
        if statuses:
            query = query.where(sessions.c.status.in_([s.value for s in statuses]))
        if agent is not None:
            members = sa.select(session_participants.c.session_id).where(session_participants.c.agent == agent)
            query = query.where(sessions.c.id.in_(members))
        if after_id is not None:
            query = query.where(sessions.c.id > after_id)
        found = [_session(r) for r in (await self._db.execute(query)).mappings().all()]
        await self._load_participants(found)
        return found

    async def record_append(
        self, session: Session, *, added_bytes: int, now: datetime, expires_at: datetime, digest: Digest, count: int = 1
    ) -> int:
        result = await self._db.execute(
            _RECORD_APPEND,
            {
                "b_id": session.id,
                "b_count": count,
                "b_added": added_bytes,
                "b_now": now,
                "b_expires": expires_at,
                "b_digest": digest.to_json(),
            },
        )
        sequence = int(result.scalar_one())
        session.entry_count = sequence
        session.content_bytes += added_bytes
        session.last_activity_at = session.updated_at = now
        session.expires_at = expires_at
        session.digest = digest
        return sequence

    async def count_by_status(self) -> dict[SessionStatus, int]:
        query = sa.select(sessions.c.status, sa.func.count().label("n")).group_by(sessions.c.status)
        rows = (await self._db.execute(query)).mappings()
        return {SessionStatus(r["status"]): int(r["n"]) for r in rows}

    async def set_status(self, session: Session, status: SessionStatus, *, now: datetime) -> None:
        await self._db.execute(
            sessions.update()
            .where(sessions.c.id == session.id)
            .values(status=status.value, updated_at=now, status_changed_at=now)
        )
        session.status = status
        session.updated_at = session.status_changed_at = now

    async def set_retention(self, session: Session, policy: str, *, now: datetime) -> None:
        await self._db.execute(
            sessions.update().where(sessions.c.id == session.id).values(retention_policy=policy, updated_at=now)
        )
        session.retention_policy = policy
        session.updated_at = now

    async def touch(self, session: Session, *, now: datetime, expires_at: datetime) -> None:
        await self._db.execute(
            sessions.update()
            .where(sessions.c.id == session.id)
            .values(last_activity_at=now, updated_at=now, expires_at=expires_at)
        )
        session.last_activity_at = session.updated_at = now
        session.expires_at = expires_at

    async def set_owner(self, session: Session, owner_agent: str, *, now: datetime) -> None:
        await self._db.execute(
            sessions.update().where(sessions.c.id == session.id).values(owner_agent=owner_agent, updated_at=now)
        )
        session.owner_agent = owner_agent

    async def set_participant(self, session: Session, agent: str, role: ParticipantRole, *, now: datetime) -> None:
        if session.participants is None:
            await self.load_participants(session)
        assert session.participants is not None
        table = session_participants
        # The list was read in this transaction, under the session's lock: it says which statement.
        if any(p.agent == agent for p in session.participants):
            await self._db.execute(
                table.update().where(table.c.session_id == session.id, table.c.agent == agent).values(role=role.value)
            )
        else:
            await self._db.execute(
                table.insert().values(session_id=session.id, agent=agent, role=role.value, joined_at=now)
            )
        others = [p for p in session.participants if p.agent != agent]
        joined = next((p.joined_at for p in session.participants if p.agent == agent), now)
        session.participants = [*others, Participant(agent=agent, role=role, joined_at=joined)]

    async def _load_participants(self, found: list[Session]) -> None:
        if not found:
            return
        by_id = {s.id: s for s in found}
        for session in found:
            session.participants = []
        rows = await self._db.execute(_PARTICIPANTS, {"b_ids": list(by_id)})
        for row in rows.mappings():
            participants = by_id[row["session_id"]].participants
            assert participants is not None
            participants.append(
                Participant(agent=row["agent"], role=ParticipantRole(row["role"]), joined_at=utc(row["joined_at"]))
            )


def _entry_row(session_id: int, sequence_number: int, entry: NewEntry, now: datetime) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "sequence_number": sequence_number,
        "context_type": entry.context_type.value,
        "agent": entry.agent,
        "meta": entry.metadata,
        "content_bytes": entry.content_bytes,
        "content_sha256": entry.content_sha256,
        "idempotency_key": entry.idempotency_key,
        "created_at": now,
        "content": entry.content,
    }


class SqlEntryRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def add(self, session_id: int, sequence_number: int, entry: NewEntry, *, now: datetime) -> ContextEntry:
        await insert_entries(self._db, [_entry_row(session_id, sequence_number, entry, now)])  # and its index row
        return ContextEntry(
            session_id=session_id,
            sequence_number=sequence_number,
            context_type=entry.context_type,
            content=entry.content,
            metadata=entry.metadata,
            agent=entry.agent,
            created_at=now,
            content_bytes=entry.content_bytes,
            content_sha256=entry.content_sha256,
            idempotency_key=entry.idempotency_key,
        )

    async def add_many(
        self, session_id: int, first_sequence: int, entries: Sequence[NewEntry], *, now: datetime
    ) -> None:
        if not entries:
            return
        await insert_entries(
            self._db, [_entry_row(session_id, first_sequence + i, entry, now) for i, entry in enumerate(entries)]
        )

    async def existing_keys(self, session_id: int, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        c = context_entries.c
        for start in range(0, len(keys), 500):  # bounded IN lists, on the unique (session, key) index
            chunk = list(keys[start : start + 500])
            rows = await self._db.fetch_mappings(
                sa.select(c.idempotency_key).where(c.session_id == session_id, c.idempotency_key.in_(chunk))
            )
            found.update(str(r["idempotency_key"]) for r in rows)
        return found

    async def find_by_idempotency_key(self, session_id: int, key: str) -> ContextEntry | None:
        row = (
            (
                await self._db.execute(
                    sa.select(context_entries).where(
                        context_entries.c.session_id == session_id, context_entries.c.idempotency_key == key
                    )
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else _entry(row)

    async def list_page(
        self,
        session_id: int,
        *,
        after_sequence: int,
        up_to: int,
        limit: int,
        context_types: Sequence[ContextType] | None,
        max_bytes: int,
    ) -> list[ContextEntry]:
        c = context_entries.c
        # Which entries, from the index and the sizes alone: the next `limit` sequence numbers, then a
        # running total of their sizes over those few rows (not over the rest of the session), so the
        # contents of entries well past the byte limit are never read into memory. Returned: every
        # entry that starts before the limit (the last of them may cross it) and the one after it,
        # so the caller sees that more follow even when a single entry fills the page.
        window = sa.select(c.sequence_number, c.content_bytes).where(
            c.session_id == session_id, c.sequence_number > after_sequence, c.sequence_number <= up_to
        )
        if context_types:
            window = window.where(c.context_type.in_([t.value for t in context_types]))
        candidates = window.order_by(c.sequence_number).limit(limit).subquery()
        sized = sa.select(
            candidates.c.sequence_number,
            sa.func.coalesce(
                sa.func.sum(candidates.c.content_bytes).over(order_by=candidates.c.sequence_number, rows=(None, -2)),
                0,
            ).label("bytes_before_previous"),
        ).subquery()
        query = (
            sa.select(context_entries)
            .join(sized, sa.and_(c.session_id == session_id, c.sequence_number == sized.c.sequence_number))
            .where(sized.c.bytes_before_previous < max_bytes)
            .order_by(c.sequence_number)
        )
        rows = await self._db.fetch_mappings(query)
        return [_entry(r) for r in rows]

    async def list_tail(self, session_id: int, *, up_to: int, limit: int, excerpt_chars: int) -> list[EntryExcerpt]:
        # Walks the (session_id, sequence_number) unique index backwards; the database cuts the
        # content, so an 8 MiB entry costs its head and tail, never its whole body.
        c = context_entries.c
        length = sa.func.length(c.content)
        query = (
            sa.select(
                c.sequence_number,
                c.context_type,
                c.agent,
                c.meta,
                c.content_codec,
                length.label("content_chars"),
                sa.func.substr(c.content, 1, 2 * excerpt_chars).label("head"),
                sa.case(
                    (length > 2 * excerpt_chars, sa.func.substr(c.content, length - excerpt_chars + 1, excerpt_chars)),
                    else_="",
                ).label("tail"),
            )
            .where(c.session_id == session_id, c.sequence_number <= up_to)
            .order_by(c.sequence_number.desc())
            .limit(limit)
        )
        excerpts = []
        for r in await self._db.fetch_mappings(query):
            chars = int(r["content_chars"] or 0)
            head = str(r["head"] or "")
            if r["content_codec"] != "plain":
                head, chars = "(archived: content packed)", 0
            excerpts.append(
                EntryExcerpt(
                    sequence_number=int(r["sequence_number"]),
                    context_type=ContextType(r["context_type"]),
                    agent=r["agent"],
                    metadata=dict(r["meta"] or {}),
                    head=head[:excerpt_chars] if chars > 2 * excerpt_chars else head,
                    tail=str(r["tail"] or ""),
                    content_chars=chars,
                )
            )
        return excerpts


class SqlImportRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def find(self, session_id: int, source: str) -> ImportCursor | None:
        c = import_sources.c
        rows = await self._db.fetch_mappings(
            sa.select(import_sources).where(c.session_id == session_id, c.source == source)
        )
        if not rows:
            return None
        r = rows[0]
        return ImportCursor(
            session_id=int(r["session_id"]),
            source=r["source"],
            fingerprint=r["fingerprint"],
            byte_offset=int(r["byte_offset"]),
            line_count=int(r["line_count"]),
            records=int(r["records"]),
        )

    async def save(self, cursor: ImportCursor, *, now: datetime) -> None:
        # Runs inside the write transaction that stored the entries: update, else insert.
        c = import_sources.c
        values = {
            "fingerprint": cursor.fingerprint,
            "byte_offset": cursor.byte_offset,
            "line_count": cursor.line_count,
            "records": cursor.records,
            "updated_at": now,
        }
        result = await self._db.execute(
            import_sources.update().where(c.session_id == cursor.session_id, c.source == cursor.source).values(**values)
        )
        if not result.rowcount:
            await self._db.execute(
                import_sources.insert().values(session_id=cursor.session_id, source=cursor.source, **values)
            )


class SqlEventRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def add(self, event: LifecycleEvent) -> None:
        await self._db.execute(
            lifecycle_events.insert().values(
                session_id=event.session_id,
                from_status=event.from_status.value if event.from_status else None,
                to_status=event.to_status.value,
                reason=event.reason[:200],
                actor=event.actor,
                details=event.details,
                created_at=event.created_at,
            )
        )

    async def list_for_session(self, session_id: int, *, limit: int) -> list[LifecycleEvent]:
        rows = await self._db.execute(
            sa.select(lifecycle_events)
            .where(lifecycle_events.c.session_id == session_id)
            .order_by(lifecycle_events.c.id)
            .limit(limit)
        )
        return [
            LifecycleEvent(
                session_id=r["session_id"],
                from_status=SessionStatus(r["from_status"]) if r["from_status"] else None,
                to_status=SessionStatus(r["to_status"]),
                reason=r["reason"],
                actor=r["actor"],
                created_at=utc(r["created_at"]),
                details=dict(r["details"] or {}),
            )
            for r in rows.mappings()
        ]


def _session(row: Any) -> Session:
    return Session(
        id=row["id"],
        session_key=row["session_key"],
        source_agent=row["source_agent"],
        owner_agent=row["owner_agent"],
        status=SessionStatus(row["status"]),
        metadata=dict(row["meta"] or {}),
        created_at=utc(row["created_at"]),
        updated_at=utc(row["updated_at"]),
        last_activity_at=utc(row["last_activity_at"]),
        expires_at=utc(row["expires_at"]),
        ttl_seconds=row["ttl_seconds"],
        entry_count=int(row["entry_count"]),
        content_bytes=int(row["content_bytes"]),
        digest=Digest.from_json(row["digest"]) if "digest" in row else None,
        retention_policy=row["retention_policy"],
        status_changed_at=utc(row["status_changed_at"]),
        shared=bool(row["shared"]) if "shared" in row else False,
    )


def _entry(row: Any) -> ContextEntry:
    return ContextEntry(
        session_id=row["session_id"],
        sequence_number=int(row["sequence_number"]),
        context_type=ContextType(row["context_type"]),
        content=unpack_content(row["content"], row["content_codec"], row["content_packed"]),
        metadata=dict(row["meta"] or {}),
        agent=row["agent"],
        created_at=utc(row["created_at"]),
        content_bytes=int(row["content_bytes"]),
        content_sha256=row["content_sha256"],
        idempotency_key=row["idempotency_key"],
    )
