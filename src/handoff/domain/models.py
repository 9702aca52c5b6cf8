"""The nouns of the product: sessions, context entries, handoffs, lifecycle events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handoff.domain.digest import Digest


class SessionStatus(StrEnum):
    ACTIVE = "active"
    DORMANT = "dormant"
    COMPLETED = "completed"
    EXPIRED = "expired"
    ARCHIVED = "archived"


class ContextType(StrEnum):
    MESSAGE = "message"
    FILE = "file"
    TOOL_CALL = "tool_call"
    SYSTEM = "system"


class HandoffType(StrEnum):
    CONTEXT_TRANSFER = "context_transfer"
    FULL_HANDOFF = "full_handoff"
    COLLABORATION = "collaboration"


class HandoffStatus(StrEnum):
    """pending -> accepted -> completed, or pending -> declined | expired (see domain/lifecycle.py)."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    DECLINED = "declined"
    EXPIRED = "expired"


class ParticipantRole(StrEnum):
    OWNER = "owner"
    COLLABORATOR = "collaborator"
    READER = "reader"
    FORMER_OWNER = "former_owner"


WRITER_ROLES = frozenset({ParticipantRole.OWNER, ParticipantRole.COLLABORATOR})


@dataclass(frozen=True, slots=True)
class Participant:
    agent: str
    role: ParticipantRole
    joined_at: datetime


@dataclass(slots=True)
class Session:
    id: int
    session_key: str
    source_agent: str
    owner_agent: str
    status: SessionStatus
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    expires_at: datetime
    ttl_seconds: int
    entry_count: int
    content_bytes: int
    retention_policy: str = "standard"
    status_changed_at: datetime | None = None
    # None = not loaded: the append path skips them when the owner writes (one query fewer).
    participants: list[Participant] | None = None
    # The running brief digest, loaded only by the paths that read or fold it.
    digest: Digest | None = None
    # Whether anyone besides the owner takes part (reader, collaborator, former owner): read with the
    # append's row lock, so an entry that names no writer can be refused without loading participants.
    shared: bool = False


@dataclass(frozen=True, slots=True)
class ContextEntry:
    session_id: int
    sequence_number: int
    context_type: ContextType
    content: str
    metadata: dict[str, Any]
    agent: str
    created_at: datetime
    content_bytes: int
    content_sha256: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class EntryExcerpt:
    """An entry cut to its head and tail: what the brief shows of the newest history."""

    sequence_number: int
    context_type: ContextType
    agent: str
    metadata: dict[str, Any]
    head: str
    tail: str  # the last characters when the content is longer than head + tail, else ""
    content_chars: int

    @classmethod
    def of(cls, entry: ContextEntry, excerpt_chars: int) -> EntryExcerpt:
        """Whole content when it is at most twice `excerpt_chars`, else its head and its tail."""
        content = entry.content
        long = len(content) > 2 * excerpt_chars
        return cls(
            sequence_number=entry.sequence_number,
            context_type=entry.context_type,
            agent=entry.agent,
            metadata=entry.metadata,
            head=content[:excerpt_chars] if long else content,
            tail=content[-excerpt_chars:] if long else "",
            content_chars=len(content),
        )


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry as the caller hands it in, before it has a sequence number."""

    context_type: ContextType
    content: str
    metadata: dict[str, Any]
    agent: str
    content_bytes: int
    content_sha256: str
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class HandoffProgress:
    """Where a handoff stands after it was made: the target's answers, each with when (and who)."""

    status: HandoffStatus = HandoffStatus.PENDING
    accepted_at: datetime | None = None
    accepted_by: str | None = None
    completed_at: datetime | None = None
    completion_summary: str | None = None
    declined_at: datetime | None = None
    decline_reason: str | None = None
    expired_at: datetime | None = None

    def fields(self) -> dict[str, Any]:
        """Every field by name, the status as its value: what storage writes and results show."""
        return {
            "status": self.status.value,
            "accepted_at": self.accepted_at,
            "accepted_by": self.accepted_by,
            "completed_at": self.completed_at,
            "completion_summary": self.completion_summary,
            "declined_at": self.declined_at,
            "decline_reason": self.decline_reason,
            "expired_at": self.expired_at,
        }


@dataclass(frozen=True, slots=True)
class Handoff:
    handoff_id: str
    session_id: int
    session_key: str
    source_agent: str
    target_agent: str
    handoff_type: HandoffType
    request_data: dict[str, Any]
    brief: str
    summary: str
    instructions: str
    token_budget: int
    brief_tokens: int
    up_to_sequence: int
    created_at: datetime
    note: dict[str, Any] | None = None
    progress: HandoffProgress = field(default_factory=HandoffProgress)
    # The target's role in the session before this handoff (None: it took no part), so a handoff that is
    # declined or expires can give back exactly what it granted.
    target_prior_role: ParticipantRole | None = None

    @property
    def status(self) -> HandoffStatus:
        return self.progress.status


@dataclass(frozen=True, slots=True)
class HandoffHeader:
    """A handoff as listings show it: who, what, where it stands; no brief."""

    handoff_id: str
    session_key: str
    source_agent: str
    target_agent: str
    handoff_type: HandoffType
    summary: str
    created_at: datetime
    progress: HandoffProgress

    @property
    def status(self) -> HandoffStatus:
        return self.progress.status


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    session_id: int
    from_status: SessionStatus | None
    to_status: SessionStatus
    reason: str
    actor: str
    created_at: datetime
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImportCursor:
    """How far a log file was imported into a session: resume here when it has grown."""

    session_id: int
    source: str
    fingerprint: str
    byte_offset: int
    line_count: int
    records: int
