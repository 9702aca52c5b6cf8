"""The lifecycle jobs: sessions age out by themselves, and nothing is deleted by surprise.

    mark_dormant  active, idle for `idle_seconds`                     -> dormant
    expire        active|dormant, past expires_at (TTL since activity) -> expired
    archive       completed|expired, `archive_after` of its policy    -> archived (content compressed)
    purge         archived, `purge_after` of its policy (never legal_hold) -> deleted
    repair        entries/handoffs without a session, counters out of step with entries
    expire_handoffs  handoffs pending longer than `handoff_accept_seconds` -> expired (what they
                  granted goes back, as when declined)
    merge_search  merges the small pieces appends add to the search index (SQLite), a little per
                  transaction, so searches stay fast and appends never wait for a merge
    expire_stream_events  stored SSE events older than the streams' retention, then the oldest
                  beyond their total byte budget -> deleted (services/streams.py)

Each session moves in its own short transaction that re-checks the condition under the row lock,
so a job racing an append never undoes it: the append either commits first (its activity pushes
the deadline out and the re-check fails) or finds the session already moved and is refused.
Handoffs likewise: each expires in its own transaction under its session's lock, re-checked, so
an accept that commits first wins and the job leaves that handoff alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio

from handoff.config import LifecycleSettings, StreamSettings
from handoff.domain.digest import Digest
from handoff.domain.lifecycle import is_handoff_overdue
from handoff.domain.models import HandoffStatus, Session, SessionStatus
from handoff.domain.retention import POLICIES
from handoff.errors import HandoffError, InvalidInput
from handoff.services.ports import Clock, UnitOfWork, UnitOfWorkFactory
from handoff.services.transitions import lock_handoff, move_handoff, transition

# Standard-library logging (services stay free of infrastructure); logs.py renders `extra` as JSON fields.
log = logging.getLogger(__name__)

JOBS = (
    "repair",
    "mark_dormant",
    "expire",
    "archive",
    "purge",
    "expire_handoffs",
    "expire_stream_events",
    "merge_search",
)
MERGE_PAGES = 200  # of index work per transaction: a few milliseconds holding the write lock
MAX_DETAIL_KEYS = 100


# A digest rebuild reads the history in chunks of `chunk_rows` entries and at most this much content
# (entries can be 8 MiB each: 500 of them would not fit in memory).
REBUILD_CHUNK_BYTES = 16 * 1024 * 1024


@dataclass
class JobReport:
    job: str
    started_at: datetime
    examined: int = 0
    changed: int = 0
    errors: int = 0
    duration_ms: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def note(self, key: str, value: Any) -> None:
        items = self.details.setdefault(key, [])
        if len(items) < MAX_DETAIL_KEYS:
            items.append(value)


class LifecycleService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        settings: LifecycleSettings,
        holder: str,
        streams: StreamSettings | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._settings = settings
        self._holder = holder
        self._streams = streams or StreamSettings()

    async def run(self, job: str) -> JobReport:
        """Run one job to completion (bounded by max_sessions_per_run) and record its statistics."""
        steps: dict[str, Callable[[JobReport], Awaitable[None]]] = {
            "repair": self._repair,
            "mark_dormant": self._mark_dormant,
            "expire": self._expire,
            "archive": self._archive,
            "purge": self._purge,
            "expire_handoffs": self._expire_handoffs,
            "merge_search": self._merge_search,
            "expire_stream_events": self._expire_stream_events,
        }
        if job not in steps:
            raise InvalidInput(f"no job named {job!r}; jobs are {', '.join(JOBS)}", {"field": "job"})
        report = JobReport(job=job, started_at=self._clock.now())
        started = time.perf_counter()
        await steps[job](report)
        report.duration_ms = round((time.perf_counter() - started) * 1000)
        async with self._write() as uow:
            await uow.maintenance.add_job_run(
                job=job,
                holder=self._holder,
                started_at=report.started_at,
                duration_ms=report.duration_ms,
                examined=report.examined,
                changed=report.changed,
                errors=report.errors,
                details=report.details,
            )
            await uow.commit()
        log.info(
            "job finished",
            extra={
                "job": job,
                "examined": report.examined,
                "changed": report.changed,
                "errors": report.errors,
                "duration_ms": report.duration_ms,
            },
        )
        return report

    async def recent_runs(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        async with self._uow(write=False) as uow:
            return await uow.maintenance.recent_job_runs(job=job, limit=limit)

    # -- the jobs --------------------------------------------------------------------------------
    async def _mark_dormant(self, report: JobReport) -> None:
        now = self._clock.now()
        cutoff = now - timedelta(seconds=self._settings.idle_seconds)

        def due(s: Session) -> bool:
            return s.status is SessionStatus.ACTIVE and s.last_activity_at <= cutoff

        await self._move_each(
            report,
            [SessionStatus.ACTIVE],
            "last_activity_at",
            cutoff,
            None,
            due,
            SessionStatus.DORMANT,
            f"idle for {self._settings.idle_seconds}s",
        )

    async def _expire(self, report: JobReport) -> None:
        now = self._clock.now()

        def due(s: Session) -> bool:
            return s.status in (SessionStatus.ACTIVE, SessionStatus.DORMANT) and s.expires_at <= now

        await self._move_each(
            report,
            [SessionStatus.ACTIVE, SessionStatus.DORMANT],
            "expires_at",
            now,
            None,
            due,
            SessionStatus.EXPIRED,
            "ttl elapsed",
        )

    async def _archive(self, report: JobReport) -> None:
        now = self._clock.now()
        for policy in POLICIES.values():
            cutoff = now - policy.archive_after

            def due(s: Session, cutoff: datetime = cutoff) -> bool:
                return s.status in (SessionStatus.COMPLETED, SessionStatus.EXPIRED) and _since(s) <= cutoff

            await self._move_each(
                report,
                [SessionStatus.COMPLETED, SessionStatus.EXPIRED],
                "status_changed_at",
                cutoff,
                [policy.name],
                due,
                SessionStatus.ARCHIVED,
                f"{policy.name} retention: archived {policy.archive_after.days}d after it stopped",
                before_move=self._pack,
            )

    async def _purge(self, report: JobReport) -> None:
        now = self._clock.now()
        for policy in POLICIES.values():
            if policy.purge_after is None:
                continue  # legal_hold: kept for ever
            cutoff = now - policy.purge_after
            keys = await self._due([SessionStatus.ARCHIVED], "status_changed_at", cutoff, [policy.name], report)
            for key in keys:
                try:
                    if await self._purge_one(key, cutoff):
                        report.changed += 1
                        report.note("purged", key)
                        log.info(
                            "session purged", extra={"session_key": key, "policy": policy.name, "actor": "job:purge"}
                        )
                except HandoffError as error:
                    report.errors += 1
                    report.note("failed", {"session_key": key, "error": error.message})

    async def _expire_handoffs(self, report: JobReport) -> None:
        now = self._clock.now()
        accept_seconds = self._settings.handoff_accept_seconds
        async with self._uow(write=False) as uow:
            due = await uow.handoffs.pending_created_before(
                now - timedelta(seconds=accept_seconds), limit=self._settings.max_sessions_per_run
            )
        report.examined += len(due)
        for handoff_id in due:
            try:
                async with self._write() as uow:
                    handoff, session = await lock_handoff(uow, handoff_id)
                    if not is_handoff_overdue(handoff, now, accept_seconds):
                        continue  # answered since we looked
                    await move_handoff(uow, session, handoff, HandoffStatus.EXPIRED, actor=f"job:{report.job}", now=now)
                    await uow.commit()
            except HandoffError as error:
                report.errors += 1
                report.note("failed", {"handoff_id": handoff_id, "error": error.message})
                continue
            report.changed += 1
            report.note("expired", handoff_id)
            log.info(
                "handoff expired",
                extra={"handoff_id": handoff_id, "session_key": handoff.session_key, "actor": report.job},
            )

    async def _merge_search(self, report: JobReport) -> None:
        for _ in range(self._settings.max_sessions_per_run):
            async with self._write() as uow:
                merged = await uow.search.merge(pages=MERGE_PAGES)
                await uow.commit()
            report.examined += 1
            if not merged:
                return
            report.changed += 1

    async def _expire_stream_events(self, report: JobReport) -> None:
        """Old events first (no one may replay them any more), then the oldest of the rest until all
        streams together fit `max_total_bytes`; in chunks, each its own short transaction."""
        chunk = self._settings.chunk_rows
        cutoff = self._clock.now() - timedelta(seconds=self._streams.retention_seconds)
        expired = 0
        while True:
            async with self._write() as uow:
                deleted = await uow.streams.delete_before(cutoff, limit=chunk)
                await uow.commit()
            expired += deleted
            if deleted < chunk:
                break
        async with self._uow(write=False) as uow:
            last = await uow.streams.newest_over_budget(self._streams.max_total_bytes)
        over_budget = 0
        while last is not None:
            async with self._write() as uow:
                deleted = await uow.streams.delete_up_to(last, limit=chunk)
                await uow.commit()
            over_budget += deleted
            if deleted < chunk:
                break
        report.changed += expired + over_budget
        report.details["expired"] = expired
        report.details["over_budget"] = over_budget

    async def _repair(self, report: JobReport) -> None:
        async with self._write() as uow:
            removed = await uow.maintenance.delete_orphans()
            await uow.commit()
        report.details["orphans_removed"] = removed
        report.changed += sum(removed.values())
        async with self._uow(write=False) as uow:
            wrong = await uow.maintenance.sessions_with_wrong_counters(limit=self._settings.max_sessions_per_run)
        report.examined += len(wrong)
        for session_id, key, stored, actual in wrong:
            digest = await self._rebuild_digest(key, actual)
            async with self._write() as uow:
                await uow.maintenance.fix_counters(session_id, entry_count=actual, digest_json=digest.to_json())
                await uow.commit()
            report.changed += 1
            report.note("counters_fixed", {"session_key": key, "was": stored, "now": actual})
            log.warning("repaired session counters", extra={"session_key": key, "stored": stored, "actual": actual})

    # -- helpers ---------------------------------------------------------------------------------
    async def _due(
        self,
        statuses: list[SessionStatus],
        column: str,
        before: datetime,
        policies: list[str] | None,
        report: JobReport,
    ) -> list[str]:
        async with self._uow(write=False) as uow:
            keys = await uow.maintenance.due_session_keys(
                statuses=statuses,
                column=column,
                before=before,
                limit=self._settings.max_sessions_per_run,
                policies=policies,
            )
        report.examined += len(keys)
        return keys

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[UnitOfWork]:
        """A job's write transaction, then a pause as long as it held the write lock (at least
        `job_write_pause_ms`). SQLite has one writer at a time and a waiting request retries on a
        timer: a job that took the lock back at once would starve appends for seconds."""
        started = time.monotonic()
        async with self._uow(write=True) as uow:
            yield uow
        held = time.monotonic() - started
        await anyio.sleep(max(self._settings.job_write_pause_ms / 1000, held))

    async def _move_each(
        self,
        report: JobReport,
        statuses: list[SessionStatus],
        column: str,
        before: datetime,
        policies: Sequence[str] | None,
        still_due: Callable[[Session], bool],
        target: SessionStatus,
        reason: str,
        before_move: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        keys = await self._due(statuses, column, before, list(policies) if policies else None, report)
        for start in range(0, len(keys), self._settings.batch_size):
            for key in keys[start : start + self._settings.batch_size]:
                try:
                    if before_move is not None:
                        await before_move(key)
                    if await self._move_one(key, still_due, target, reason, report.job):
                        report.changed += 1
                except HandoffError as error:
                    report.errors += 1
                    report.note("failed", {"session_key": key, "error": error.message})

    async def _move_one(
        self, key: str, still_due: Callable[[Session], bool], target: SessionStatus, reason: str, job: str
    ) -> bool:
        async with self._write() as uow:
            session = await uow.sessions.find(key, for_update=True, with_participants=False)
            if session is None or not still_due(session):
                return False  # changed since we looked: an append or another replica got there first
            previous = session.status
            await transition(uow, session, target, reason=reason, actor=f"job:{job}", now=self._clock.now())
            await uow.commit()
        log.info(
            "session moved",
            extra={"session_key": key, "from_status": previous.value, "to_status": target.value, "actor": job},
        )
        return True

    async def _pack(self, key: str) -> None:
        """Compress a finished session's entries, a chunk per transaction (reads unpack either form)."""
        after = 0
        while True:
            async with self._write() as uow:
                session = await uow.sessions.find(key, with_participants=False)
                if session is None or session.status not in (SessionStatus.COMPLETED, SessionStatus.EXPIRED):
                    return
                reached = await uow.maintenance.pack_entries(
                    session.id, after_sequence=after, limit=self._settings.chunk_rows
                )
                await uow.commit()
            if reached == after:
                return
            after = reached

    async def _purge_one(self, key: str, cutoff: datetime) -> bool:
        while True:
            async with self._write() as uow:
                session = await uow.sessions.find(key, for_update=True, with_participants=False)
                if session is None:
                    return False
                if (
                    session.status is not SessionStatus.ARCHIVED
                    or _since(session) > cutoff
                    or POLICIES[session.retention_policy].purge_after is None
                ):
                    return False  # policy changed (e.g. to legal_hold) or the session moved
                deleted = await uow.maintenance.delete_entries(session.id, limit=self._settings.chunk_rows)
                if deleted < self._settings.chunk_rows:
                    await uow.maintenance.delete_session(session.id)
                    await uow.commit()
                    return True
                await uow.commit()

    async def _rebuild_digest(self, key: str, up_to: int) -> Digest:
        digest = Digest()
        after = 0
        while after < up_to:
            async with self._uow(write=False) as uow:
                session = await uow.sessions.get(key, with_participants=False)
                rows = await uow.entries.list_page(
                    session.id,
                    after_sequence=after,
                    up_to=up_to,
                    limit=self._settings.chunk_rows,
                    context_types=None,
                    max_bytes=REBUILD_CHUNK_BYTES,
                )
            if not rows:
                break
            for entry in rows:
                digest.absorb(
                    seq=entry.sequence_number,
                    context_type=entry.context_type,
                    content=entry.content,
                    metadata=entry.metadata,
                    agent=entry.agent,
                )
            after = rows[-1].sequence_number
        return digest


def _since(session: Session) -> datetime:
    return session.status_changed_at or session.updated_at
