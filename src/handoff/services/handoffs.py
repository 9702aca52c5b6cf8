"""Requesting a handoff and reading it back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from handoff.config import BriefSettings, LimitSettings
from handoff.domain.brief import MIN_TOKEN_BUDGET, BriefContext, render_brief
from handoff.domain.digest import Digest
from handoff.domain.instructions import handoff_resources, render_instructions
from handoff.domain.lifecycle import WRITABLE_STATES, role_of
from handoff.domain.models import Handoff, HandoffStatus, HandoffType, ParticipantRole, Session
from handoff.domain.note import parse_note
from handoff.domain.validation import parse_choice, validate_agent, validate_metadata, validate_session_key
from handoff.errors import InvalidInput, InvalidState
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
from handoff.services.transitions import expire_if_due, next_expiry, reactivate_if_dormant, record_event

# How much of the newest history a brief may quote: enough to fill a large budget, bounded so a
# handoff reads the same few rows whether the session holds 1,000 or 1,000,000 entries.
TAIL_ENTRIES = 60
TAIL_EXCERPT_CHARS = 1_500

# Higher wins: a handoff never demotes an agent that already holds more rights.
_RANK = {
    ParticipantRole.FORMER_OWNER: 0,
    ParticipantRole.READER: 1,
    ParticipantRole.COLLABORATOR: 2,
    ParticipantRole.OWNER: 3,
}


@dataclass(frozen=True, slots=True)
class HandoffView:
    handoff: Handoff
    resources: list[str]


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
    ) -> None:
        self._redactor: SecretRedactor = redactor or NoRedaction()
        self._uow = uow
        self._clock = clock
        self._limits = limits
        self._brief = brief
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
    ) -> HandoffView:
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
            if target == source:
                raise InvalidInput(f"target_agent '{target}' already owns session '{key}'", {"field": "target_agent"})
            await reactivate_if_dormant(uow, session, actor=source, now=now)
            await self._apply_effects(uow, session, source, target, kind, now)
            await uow.sessions.touch(session, now=now, expires_at=next_expiry(session, now))

            digest = session.digest or Digest()
            handoff_id = uuid.uuid4().hex
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
                status=HandoffStatus.PENDING,
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
            )
            await uow.handoffs.add(handoff)
            await uow.commit()
        await self._read_cache.remember_handoff(handoff)
        return HandoffView(handoff, handoff_resources(key, handoff_id))

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
        if not handoff_id or len(handoff_id) > 64 or not handoff_id.isalnum():
            raise InvalidInput("handoff_id is not a handoff id this server issued", {"field": "handoff_id"})
        handoff = await self._read_cache.handoff(handoff_id)
        if handoff is None:

            async def read() -> Handoff:
                async with self._uow(write=False) as uow:
                    return await uow.handoffs.get(handoff_id)

            handoff = await self._retry.call(read)
            await self._read_cache.remember_handoff(handoff)
        return HandoffView(handoff, handoff_resources(handoff.session_key, handoff.handoff_id))

    async def _apply_effects(
        self, uow: UnitOfWork, session: Session, source: str, target: str, kind: HandoffType, now: Any
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
                details={"from_owner": source, "to_owner": target, "handoff_type": kind.value},
            )
            return
        wanted = ParticipantRole.COLLABORATOR if kind is HandoffType.COLLABORATION else ParticipantRole.READER
        current = role_of(session, target)
        if current is None or _RANK[current] < _RANK[wanted]:
            await uow.sessions.set_participant(session, target, wanted, now=now)
            await record_event(
                uow,
                session,
                reason=f"{target} joined as {wanted.value}",
                actor=source,
                now=now,
                details={"agent": target, "role": wanted.value, "handoff_type": kind.value},
            )


def parse_handoff_type(value: str) -> HandoffType:
    return parse_choice(HandoffType, value, field="handoff_type")
