"""Requesting a handoff, reading it back, and the target's answers: accept, decline, complete."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from handoff.config import BriefSettings, LifecycleSettings, LimitSettings
from handoff.domain.brief import MIN_TOKEN_BUDGET, BriefContext, render_brief
from handoff.domain.digest import Digest
from handoff.domain.instructions import handoff_resources, render_instructions
from handoff.domain.lifecycle import (
    ROLE_RANK,
    WRITABLE_STATES,
    accept_deadline,
    check_handoff_target,
    is_handoff_overdue,
    role_of,
)
from handoff.domain.models import Handoff, HandoffHeader, HandoffStatus, HandoffType, ParticipantRole, Session
from handoff.domain.note import parse_note
from handoff.domain.notices import Change
from handoff.domain.validation import (
    check_storable_text,
    parse_choice,
    validate_agent,
    validate_metadata,
    validate_session_key,
)
from handoff.errors import Forbidden, InvalidInput, InvalidState, NotFound
from handoff.services.paging import check_limit, decode_position, encode_position
from handoff.services.ports import (
    Cache,
    Clock,
    NoRedaction,
    NoRetry,
    Retrier,
    SecretRedactor,
    UnitOfWork,
    UnitOfWorkFactory,
)
from handoff.services.read_cache import ReadCache
from handoff.services.transitions import (
    expire_if_due,
    lock_handoff,
    move_handoff,
    next_expiry,
    reactivate_if_dormant,
    record_event,
)

# How much of the newest history a brief may quote: enough to fill a large budget, bounded so a
# handoff reads the same few rows whether the session holds 1,000 or 1,000,000 entries.
TAIL_ENTRIES = 60
TAIL_EXCERPT_CHARS = 1_500
MAX_REASON_CHARS = 2_000
MAX_SUMMARY_CHARS = 8_000
# Who expires a pending handoff that is found overdue when someone answers it (the job names itself).
OVERDUE_ACTOR = "system"


@dataclass(frozen=True, slots=True)
class HandoffView:
    handoff: Handoff
    resources: list[str]
    accept_before: datetime | None = None  # while pending: it expires unless accepted by then


@dataclass(frozen=True, slots=True)
class HandoffLine:
    header: HandoffHeader
    accept_before: datetime | None


@dataclass(frozen=True, slots=True)
class HandoffPage:
    handoffs: list[HandoffLine]
    next_cursor: str | None


class HandoffService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        limits: LimitSettings,
        brief: BriefSettings,
        retry: Retrier | None = None,
        cache: Cache | None = None,
        redactor: SecretRedactor | None = None,
        lifecycle: LifecycleSettings | None = None,
    ) -> None:
        self._redactor: SecretRedactor = redactor or NoRedaction()
        self._uow = uow
        self._clock = clock
        self._limits = limits
        self._brief = brief
        self._accept_seconds = (lifecycle or LifecycleSettings()).handoff_accept_seconds
        self._retry = retry or NoRetry()
        self._read_cache = ReadCache(cache)

    async def request(
        self,
        session_key: str,
        target_agent: str,
        handoff_type: str,
        request_data: Any,
        token_budget: int | None,
        note: Any = None,
        caller: str | None = None,
    ) -> HandoffView:
        """Hand the session on. `caller` is the authenticated agent, when there is one: only the
        owner may hand off, checked under the session's row lock so an ownership change cannot slip
        in between the check and the handoff."""
        key = validate_session_key(session_key, max_length=self._limits.max_key_length)
        target = validate_agent(target_agent, field="target_agent", max_length=self._limits.max_key_length)
        kind = parse_handoff_type(handoff_type)
        data = validate_metadata(request_data, field="request_data", max_bytes=self._limits.max_metadata_bytes)
        data, _ = self._redactor.redact_json(data)
        agent_note = parse_note(note)
        if agent_note is not None:
            agent_note = parse_note(self._redactor.redact_json(agent_note.to_dict())[0])
        budget = self._brief.default_token_budget if token_budget is None else token_budget
        if not MIN_TOKEN_BUDGET <= budget <= self._brief.max_token_budget:
            raise InvalidInput(
                f"token_budget must be between {MIN_TOKEN_BUDGET} and {self._brief.max_token_budget}, got {budget}",
                {"field": "token_budget"},
            )

        async with self._uow(write=True) as uow:
            session = await uow.sessions.get(key, for_update=True, with_digest=True)
            now = self._clock.now()
            if await expire_if_due(uow, session, now=now):
                await uow.commit()
                raise InvalidState(f"session '{key}' is expired; it can no longer be handed off", {"status": "expired"})
            if session.status not in WRITABLE_STATES:
                raise InvalidState(
                    f"session '{key}' is {session.status.value}; only active or dormant sessions can be handed off",
                    {"status": session.status.value},
                )
            source = session.owner_agent
            if caller is not None and caller != source:
                raise Forbidden(f"only the owner ({source}) may hand off session '{key}'", {"owner": source})
            if target == source:
                raise InvalidInput(f"target_agent '{target}' already owns session '{key}'", {"field": "target_agent"})
            await reactivate_if_dormant(uow, session, actor=source, now=now)
            handoff_id = uuid.uuid4().hex
            prior_role = role_of(session, target)
            await self._apply_effects(uow, session, source, target, kind, now, handoff_id)
            await uow.sessions.touch(session, now=now, expires_at=next_expiry(session, now))

            digest = session.digest or Digest()
            # The newest history, read backwards on the sequence index and cut by the database:
            # the cost stays flat however long the session is.
            tail = await uow.entries.list_tail(
                session.id, up_to=session.entry_count, limit=TAIL_ENTRIES, excerpt_chars=TAIL_EXCERPT_CHARS
            )
            rendered = render_brief(
                digest,
                BriefContext(
                    session_key=key,
                    source_agent=source,
                    target_agent=target,
                    handoff_type=kind,
                    request_data=data,
                    up_to_sequence=session.entry_count,
                    note=agent_note,
                ),
                budget,
                tail,
            )
            handoff = Handoff(
                handoff_id=handoff_id,
                session_id=session.id,
                session_key=key,
                source_agent=source,
                target_agent=target,
                handoff_type=kind,
                request_data=data,
                note=agent_note.to_dict() if agent_note else None,
                brief=rendered.text,
                summary=rendered.summary,
                instructions=render_instructions(
                    session_key=key, handoff_id=handoff_id, target_agent=target, handoff_type=kind
                ),
                token_budget=budget,
                brief_tokens=rendered.tokens,
                up_to_sequence=session.entry_count,
                created_at=now,
                target_prior_role=prior_role,
            )
            await uow.handoffs.add(handoff)
            uow.announce(Change.session(key))
            uow.announce(Change.handoff(handoff_id))
            uow.announce(Change.inbox(target))
            await uow.commit()
        await self._read_cache.remember_handoff(handoff)
        return self._view(handoff)

    async def preview(self, session_key: str, token_budget: int) -> str:
        """What a brief would say now, without handing anything off (for the prepare_handoff prompt)."""
        key = validate_session_key(session_key, max_length=self._limits.max_key_length)

        async def read() -> str:
            async with self._uow(write=False) as uow:
                session = await uow.sessions.get(key, with_digest=True)
                tail = await uow.entries.list_tail(
                    session.id, up_to=session.entry_count, limit=TAIL_ENTRIES, excerpt_chars=TAIL_EXCERPT_CHARS
                )
            ctx = BriefContext(
                session_key=key,
                source_agent=session.owner_agent,
                target_agent="(the next agent)",
                handoff_type=HandoffType.CONTEXT_TRANSFER,
                request_data={},
                up_to_sequence=session.entry_count,
            )
            return render_brief(session.digest or Digest(), ctx, token_budget, tail).text

        return await self._retry.call(read)

    async def count_by_type_and_status(self) -> dict[tuple[str, str], int]:
        """Handoffs per (handoff_type, status), for metrics (one read; empty combinations left out)."""
        async with self._uow(write=False) as uow:
            counts = await uow.handoffs.count_by_type_and_status()
        return {(kind.value, status.value): n for (kind, status), n in counts.items()}

    async def get(self, handoff_id: str) -> HandoffView:
        hid = _check_handoff_id(handoff_id)
        made = await self._read_cache.handoff(hid)

        async def read() -> Handoff:
            async with self._uow(write=False) as uow:
                if made is None:
                    return await uow.handoffs.get(hid)
                # What it was made with comes from the cache; where it stands, always from the database.
                progress = await uow.handoffs.find_progress(hid)
                if progress is None:
                    raise NotFound(f"no handoff with id '{hid}'", {"handoff_id": hid})
                return replace(made, progress=progress)

        handoff = await self._retry.call(read)
        if made is None:
            await self._read_cache.remember_handoff(handoff)
        return self._view(handoff)

    async def list_handoffs(
        self,
        *,
        target_agent: str | None,
        source_agent: str | None,
        status: str | None,
        session_key: str | None,
        cursor: str | None,
        limit: int,
    ) -> HandoffPage:
        """Handoffs newest first, filtered; keyset pages (a page never repeats or skips a row)."""
        limit = check_limit(limit, self._limits.max_page_size)
        before = decode_position(cursor, prefix="h") if cursor else None
        n = self._limits.max_key_length
        target = validate_agent(target_agent, field="target_agent", max_length=n) if target_agent is not None else None
        source = validate_agent(source_agent, field="source_agent", max_length=n) if source_agent is not None else None
        wanted = parse_choice(HandoffStatus, status, field="status") if status is not None else None
        key = validate_session_key(session_key, max_length=n) if session_key is not None else None

        async def read() -> list[HandoffHeader]:
            async with self._uow(write=False) as uow:
                session_id = None
                if key is not None:
                    session = await uow.sessions.find(key, with_participants=False)
                    if session is None:
                        raise NotFound(f"no session with key '{key}'", {"session_key": key})
                    session_id = session.id
                return await uow.handoffs.list_page(
                    target_agent=target,
                    source_agent=source,
                    status=wanted,
                    session_id=session_id,
                    before=before,
                    limit=limit + 1,
                )

        rows = await self._retry.call(read)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_position("h", rows[-1].created_at, rows[-1].handoff_id) if more and rows else None
        lines = [HandoffLine(r, self._accept_before(r.created_at, r.status)) for r in rows]
        return HandoffPage(lines, next_cursor)

    async def accept(self, handoff_id: str, agent: str) -> HandoffView:
        """The target takes the handoff up. Of two racing accepts exactly one wins."""
        handoff, _ = await self._answer(handoff_id, agent, HandoffStatus.ACCEPTED, "accept")
        return self._view(handoff)

    async def decline(self, handoff_id: str, agent: str, reason: str) -> tuple[HandoffView, str]:
        """The target turns the handoff down, saying why; what it granted goes back. Returns the view and
        the session's owner afterwards (the source again, for a full_handoff nobody took over since)."""
        text = self._answer_text(reason, "reason", MAX_REASON_CHARS, required=True)
        handoff, owner = await self._answer(handoff_id, agent, HandoffStatus.DECLINED, "decline", text)
        return self._view(handoff), owner

    async def complete(self, handoff_id: str, agent: str, summary: str | None) -> HandoffView:
        """The target reports the handed-off work done (the session itself stays as it is)."""
        text = self._answer_text(summary, "summary", MAX_SUMMARY_CHARS, required=False)
        handoff, _ = await self._answer(handoff_id, agent, HandoffStatus.COMPLETED, "complete", text)
        return self._view(handoff)

    async def _answer(
        self, handoff_id: str, agent: str, target: HandoffStatus, action: str, text: str | None = None
    ) -> tuple[Handoff, str]:
        """Move the handoff to `target` as `agent`; the handoff as moved and the session's owner after."""
        hid = _check_handoff_id(handoff_id)
        who = validate_agent(agent, field="agent", max_length=self._limits.max_key_length)
        async with self._uow(write=True) as uow:
            handoff, session = await lock_handoff(uow, hid)
            check_handoff_target(handoff, who, action)
            now = self._clock.now()
            if is_handoff_overdue(handoff, now, self._accept_seconds):
                # Not accepted in time: it expires now, whatever the job's schedule, and says so.
                await move_handoff(uow, session, handoff, HandoffStatus.EXPIRED, actor=OVERDUE_ACTOR, now=now)
                await uow.commit()
                deadline = accept_deadline(handoff.created_at, self._accept_seconds)
                raise InvalidState(
                    f"handoff '{hid}' expired: it was not accepted by {deadline.isoformat()} "
                    f"({self._accept_seconds}s after it was made)",
                    {"handoff_id": hid, "status": HandoffStatus.EXPIRED.value},
                )
            moved = await move_handoff(uow, session, handoff, target, actor=who, now=now, text=text)
            await uow.commit()
        return moved, session.owner_agent

    def _answer_text(self, value: str | None, field: str, limit: int, *, required: bool) -> str | None:
        text = (value or "").strip()
        if not text:
            if required:
                raise InvalidInput(
                    f"{field} must not be empty: say why, so the agent that handed it off can act on it",
                    {"field": field},
                )
            return None
        if len(text) > limit:
            raise InvalidInput(
                f"{field} is {len(text)} characters long; the limit is {limit}", {"field": field, "limit": limit}
            )
        check_storable_text(text, field=field)
        return self._redactor.redact(text)[0]

    def _view(self, handoff: Handoff) -> HandoffView:
        return HandoffView(
            handoff,
            handoff_resources(handoff.session_key, handoff.handoff_id),
            self._accept_before(handoff.created_at, handoff.status),
        )

    def _accept_before(self, created_at: datetime, status: HandoffStatus) -> datetime | None:
        return accept_deadline(created_at, self._accept_seconds) if status is HandoffStatus.PENDING else None

    async def _apply_effects(
        self,
        uow: UnitOfWork,
        session: Session,
        source: str,
        target: str,
        kind: HandoffType,
        now: Any,
        handoff_id: str,
    ) -> None:
        if kind is HandoffType.FULL_HANDOFF:
            await uow.sessions.set_participant(session, source, ParticipantRole.FORMER_OWNER, now=now)
            await uow.sessions.set_participant(session, target, ParticipantRole.OWNER, now=now)
            await uow.sessions.set_owner(session, target, now=now)
            await record_event(
                uow,
                session,
                reason="ownership transferred",
                actor=source,
                now=now,
                details={
                    "from_owner": source,
                    "to_owner": target,
                    "handoff_type": kind.value,
                    "handoff_id": handoff_id,
                },
            )
            return
        wanted = ParticipantRole.COLLABORATOR if kind is HandoffType.COLLABORATION else ParticipantRole.READER
        current = role_of(session, target)
        if current is None or ROLE_RANK[current] < ROLE_RANK[wanted]:
            await uow.sessions.set_participant(session, target, wanted, now=now)
            await record_event(
                uow,
                session,
                reason=f"{target} joined as {wanted.value}",
                actor=source,
                now=now,
                details={"agent": target, "role": wanted.value, "handoff_type": kind.value, "handoff_id": handoff_id},
            )


def parse_handoff_type(value: str) -> HandoffType:
    return parse_choice(HandoffType, value, field="handoff_type")


def _check_handoff_id(handoff_id: str) -> str:
    if not handoff_id or len(handoff_id) > 64 or not handoff_id.isalnum() or not handoff_id.isascii():
        raise InvalidInput("handoff_id is not a handoff id this server issued", {"field": "handoff_id"})
    return handoff_id
