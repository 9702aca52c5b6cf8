"""Wire shapes of tool results and resource bodies (pydantic, so every tool has an output schema)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, WithJsonSchema

from handoff.domain.models import (
    ContextEntry,
    ContextType,
    Handoff,
    HandoffHeader,
    HandoffStatus,
    HandoffType,
    LifecycleEvent,
    Participant,
    ParticipantRole,
    Session,
    SessionStatus,
)
from handoff.domain.retention import RETENTION_NAMES

if TYPE_CHECKING:  # the type only: the brief builder loads when a handoff is made
    from handoff.services.handoffs import HandoffLine, HandoffView


def one_of(values: Iterable[str]) -> Any:
    """A string whose schema lists the allowed values, inline (clients read `enum` best that way).

    The values come from the domain's enums, so no vocabulary is copied here; the services check
    them and answer a wrong one with `invalid_input` naming the field and the allowed values.
    """
    return Annotated[str, WithJsonSchema({"type": "string", "enum": list(values)})]


if TYPE_CHECKING:
    SessionStatusName = str
    ContextTypeName = str
    HandoffTypeName = str
    HandoffStatusName = str
    RoleName = str
    RetentionName = str
else:
    SessionStatusName = one_of(s.value for s in SessionStatus)
    ContextTypeName = one_of(t.value for t in ContextType)
    HandoffTypeName = one_of(t.value for t in HandoffType)
    HandoffStatusName = one_of(s.value for s in HandoffStatus)
    RoleName = one_of(r.value for r in ParticipantRole)
    RetentionName = one_of(RETENTION_NAMES)


class ParticipantOut(BaseModel):
    agent: str
    role: RoleName
    joined_at: datetime


class SessionOut(BaseModel):
    session_key: str
    status: SessionStatusName
    source_agent: str
    owner_agent: str
    participants: list[ParticipantOut]
    metadata: dict[str, Any]
    entry_count: int = Field(description="Entries so far; also the last sequence number.")
    content_bytes: int
    ttl_seconds: int
    retention_policy: str
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    expires_at: datetime = Field(description="Slides forward with every write.")
    counts_by_type: dict[str, int] | None = None

    @classmethod
    def of(cls, session: Session, counts_by_type: dict[str, int] | None = None) -> SessionOut:
        return cls(
            session_key=session.session_key,
            status=session.status.value,
            source_agent=session.source_agent,
            owner_agent=session.owner_agent,
            participants=[
                ParticipantOut(agent=p.agent, role=p.role.value, joined_at=p.joined_at) for p in _loaded(session)
            ],
            metadata=session.metadata,
            entry_count=session.entry_count,
            content_bytes=session.content_bytes,
            ttl_seconds=session.ttl_seconds,
            retention_policy=session.retention_policy,
            created_at=session.created_at,
            updated_at=session.updated_at,
            last_activity_at=session.last_activity_at,
            expires_at=session.expires_at,
            counts_by_type=counts_by_type,
        )


class SessionStateOut(BaseModel):
    """The compact session state an append returns (the hot path: no participants, no metadata)."""

    session_key: str
    status: SessionStatusName
    owner_agent: str
    entry_count: int
    content_bytes: int
    last_activity_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, session: Session) -> SessionStateOut:
        return cls(
            session_key=session.session_key,
            status=session.status.value,
            owner_agent=session.owner_agent,
            entry_count=session.entry_count,
            content_bytes=session.content_bytes,
            last_activity_at=session.last_activity_at,
            expires_at=session.expires_at,
        )


def _loaded(session: Session) -> list[Participant]:
    if session.participants is None:
        raise RuntimeError("session participants were not loaded")
    return session.participants


class EntryOut(BaseModel):
    sequence_number: int
    context_type: ContextTypeName
    content: str
    metadata: dict[str, Any]
    agent: str
    created_at: datetime
    content_bytes: int

    @classmethod
    def of(cls, entry: ContextEntry) -> EntryOut:
        return cls(
            sequence_number=entry.sequence_number,
            context_type=entry.context_type.value,
            content=entry.content,
            metadata=entry.metadata,
            agent=entry.agent,
            created_at=entry.created_at,
            content_bytes=entry.content_bytes,
        )


class EntryReceipt(BaseModel):
    sequence_number: int
    context_type: ContextTypeName
    content_bytes: int
    content_sha256: str
    agent: str
    created_at: datetime
    idempotency_key: str | None
    replayed: bool = Field(description="True when an earlier append with this idempotency_key was returned.")

    @classmethod
    def of(cls, entry: ContextEntry, *, replayed: bool) -> EntryReceipt:
        return cls(
            sequence_number=entry.sequence_number,
            context_type=entry.context_type.value,
            content_bytes=entry.content_bytes,
            content_sha256=entry.content_sha256,
            agent=entry.agent,
            created_at=entry.created_at,
            idempotency_key=entry.idempotency_key,
            replayed=replayed,
        )


class HandoffItemOut(BaseModel):
    """A handoff as listings show it: who, what, and where it stands (no brief)."""

    handoff_id: str
    uri: str = Field(description="The handoff's resource: brief, instructions and the rest.")
    session_key: str
    handoff_type: HandoffTypeName
    source_agent: str
    target_agent: str = Field(description="The only agent that may accept, decline or complete it.")
    status: HandoffStatusName = Field(
        description=(
            "pending: waiting for the target to accept or decline; accepted: the target took it up; "
            "completed: the target finished it; declined: the target turned it down (see decline_reason); "
            "expired: nobody accepted it in time."
        )
    )
    summary: str
    created_at: datetime
    accept_before: datetime | None = Field(description="While pending: it expires unless accepted by then.")
    accepted_at: datetime | None
    accepted_by: str | None
    completed_at: datetime | None
    completion_summary: str | None = Field(description="What the target said when it completed the handoff.")
    declined_at: datetime | None
    decline_reason: str | None
    expired_at: datetime | None

    @classmethod
    def of_line(cls, line: HandoffLine) -> HandoffItemOut:
        return cls(**_item_fields(line.header), accept_before=line.accept_before)

    @classmethod
    def of_view(cls, view: HandoffView) -> HandoffItemOut:
        return cls(**_item_fields(view.handoff), accept_before=view.accept_before)


def _item_fields(h: Handoff | HandoffHeader) -> dict[str, Any]:
    progress = h.progress
    return {
        "handoff_id": h.handoff_id,
        "uri": f"handoff://handoffs/{h.handoff_id}",
        "session_key": h.session_key,
        "handoff_type": h.handoff_type.value,
        "source_agent": h.source_agent,
        "target_agent": h.target_agent,
        "summary": h.summary,
        "created_at": h.created_at,
        **progress.fields(),
    }


class HandoffOut(HandoffItemOut):
    brief: str = Field(description="Markdown brief, within token_budget (estimated tokens).")
    brief_tokens: int
    token_budget: int
    instructions: str = Field(description="Exactly how the target fetches the rest and continues.")
    resources: list[str]
    request_data: dict[str, Any]
    note: dict[str, Any] | None = Field(default=None, description="The source agent's own handoff note, if any.")
    up_to_sequence: int = Field(description="The brief covers entries 1..up_to_sequence.")

    @classmethod
    def of(cls, view: HandoffView) -> HandoffOut:
        h: Handoff = view.handoff
        return cls(
            **_item_fields(h),
            accept_before=view.accept_before,
            brief=h.brief,
            brief_tokens=h.brief_tokens,
            token_budget=h.token_budget,
            instructions=h.instructions,
            resources=view.resources,
            request_data=h.request_data,
            note=h.note,
            up_to_sequence=h.up_to_sequence,
        )


class LifecycleEventOut(BaseModel):
    from_status: SessionStatusName | None
    to_status: SessionStatusName
    reason: str
    actor: str
    details: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, event: LifecycleEvent) -> LifecycleEventOut:
        return cls(
            from_status=event.from_status.value if event.from_status else None,
            to_status=event.to_status.value,
            reason=event.reason,
            actor=event.actor,
            details=event.details,
            created_at=event.created_at,
        )


class RegisterSessionResult(BaseModel):
    session: SessionOut


class UpdateContextResult(BaseModel):
    entry: EntryReceipt
    session: SessionStateOut


class RequestHandoffResult(BaseModel):
    handoff: HandoffOut


class HandoffListResult(BaseModel):
    handoffs: list[HandoffItemOut] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as cursor to read the next page; null on the last page.")


class HandoffAnswerResult(BaseModel):
    handoff: HandoffItemOut


class DeclineHandoffResult(BaseModel):
    handoff: HandoffItemOut
    owner_agent: str = Field(
        description=(
            "The session's owner now: after a declined full_handoff, the agent that handed it off "
            "(unless the session changed hands again meanwhile)."
        )
    )


class GetSessionResult(BaseModel):
    session: SessionOut


class ContextPageResult(BaseModel):
    session: SessionOut
    entries: list[EntryOut]
    next_cursor: str | None = Field(description="Pass as cursor to read the next page; null on the last page.")


class SessionListResult(BaseModel):
    sessions: list[SessionOut]
    next_cursor: str | None


class LifecycleResult(BaseModel):
    session_key: str
    status: SessionStatusName
    events: list[LifecycleEventOut]


_NOTE_LIST = {"type": "array", "items": {"type": "string", "maxLength": 1000}, "maxItems": 30}
# Published as the `note` argument's schema; validated by domain/note.py, which names the field
# of any problem in our own error format.
NOTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "Your own handoff note: what the next agent cannot read off the log. All fields optional; "
        "keep each item one concrete sentence with file, function and test names."
    ),
    "properties": {
        "goal": {
            "type": "string",
            "maxLength": 2000,
            "description": "The task as you understood it, with its specifics.",
        },
        "state": {
            "type": "string",
            "maxLength": 4000,
            "description": "Where things stand now: done, half-done, broken.",
        },
        "decisions": {**_NOTE_LIST, "description": "Choices made and why (approach, library, file layout)."},
        "rejected": {**_NOTE_LIST, "description": "Approaches tried or considered and dropped, and why."},
        "constraints": {**_NOTE_LIST, "description": "Rules from the user or the codebase that must hold."},
        "open_tasks": {**_NOTE_LIST, "description": "Work not done yet."},
        "next_steps": {**_NOTE_LIST, "description": "What the next agent should do first, in order."},
        "text": {"type": "string", "maxLength": 8000, "description": "Anything else, free-form."},
    },
    "additionalProperties": False,
}
