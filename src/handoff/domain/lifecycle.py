"""The session state machine: which states exist, which moves are legal, who may write.

active ⇄ dormant          (idle; any write or handoff reactivates)
active|dormant → completed (the owner says the work is done)
active|dormant → expired   (TTL passed without activity)
completed|expired → archived (read-only history)

And a handoff's own states (the target answers it; only the target may):

pending → accepted → completed
pending → declined   (with a reason)
pending → expired    (not accepted within the accept window)
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from handoff.domain.models import (
    WRITER_ROLES,
    Handoff,
    HandoffProgress,
    HandoffStatus,
    ParticipantRole,
    Session,
    SessionStatus,
)
from handoff.errors import Forbidden, InvalidState

_ALLOWED: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.ACTIVE: frozenset({SessionStatus.DORMANT, SessionStatus.COMPLETED, SessionStatus.EXPIRED}),
    SessionStatus.DORMANT: frozenset({SessionStatus.ACTIVE, SessionStatus.COMPLETED, SessionStatus.EXPIRED}),
    SessionStatus.COMPLETED: frozenset({SessionStatus.ARCHIVED}),
    SessionStatus.EXPIRED: frozenset({SessionStatus.ARCHIVED}),
    SessionStatus.ARCHIVED: frozenset(),
}

WRITABLE_STATES = frozenset({SessionStatus.ACTIVE, SessionStatus.DORMANT})


def can_transition(current: SessionStatus, target: SessionStatus) -> bool:
    return target in _ALLOWED[current]


def check_transition(current: SessionStatus, target: SessionStatus) -> None:
    if not can_transition(current, target):
        raise InvalidState(
            f"session cannot move from {current.value} to {target.value}",
            {"status": current.value, "requested": target.value},
        )


def is_past_expiry(session: Session, now: datetime) -> bool:
    return session.status in WRITABLE_STATES and now >= session.expires_at


def check_writable(session: Session, agent: str) -> None:
    """Raise unless `agent` may append to `session` in its current state."""
    if session.status not in WRITABLE_STATES:
        raise InvalidState(
            f"session '{session.session_key}' is {session.status.value} and no longer accepts writes",
            {"session_key": session.session_key, "status": session.status.value},
        )
    role = role_of(session, agent)
    if role not in WRITER_ROLES:
        writers = sorted(p.agent for p in session.participants or [] if p.role in WRITER_ROLES)
        raise Forbidden(
            f"agent '{agent}' may not write to session '{session.session_key}'"
            + (f" (it is a {role.value})" if role else "")
            + f"; writers are: {', '.join(writers)}",
            {"session_key": session.session_key, "agent": agent, "role": role.value if role else None},
        )


def role_of(session: Session, agent: str) -> ParticipantRole | None:
    if session.participants is None:
        if agent == session.owner_agent:
            return ParticipantRole.OWNER
        raise LookupError("participants were not loaded; load them before asking for another agent's role")
    for participant in session.participants:
        if participant.agent == agent:
            return participant.role
    return None


# Higher wins: a handoff never demotes an agent that already holds more rights.
ROLE_RANK = {
    ParticipantRole.FORMER_OWNER: 0,
    ParticipantRole.READER: 1,
    ParticipantRole.COLLABORATOR: 2,
    ParticipantRole.OWNER: 3,
}

_HANDOFF_MOVES: dict[HandoffStatus, frozenset[HandoffStatus]] = {
    HandoffStatus.PENDING: frozenset({HandoffStatus.ACCEPTED, HandoffStatus.DECLINED, HandoffStatus.EXPIRED}),
    HandoffStatus.ACCEPTED: frozenset({HandoffStatus.COMPLETED}),
    HandoffStatus.COMPLETED: frozenset(),
    HandoffStatus.DECLINED: frozenset(),
    HandoffStatus.EXPIRED: frozenset(),
}
_VERB = {
    HandoffStatus.ACCEPTED: "accepted",
    HandoffStatus.COMPLETED: "completed",
    HandoffStatus.DECLINED: "declined",
    HandoffStatus.EXPIRED: "expired",
}


def check_handoff_move(handoff_id: str, current: HandoffStatus, target: HandoffStatus) -> None:
    """Raise `invalid_state`, naming the current state, unless a handoff may move from `current` to `target`."""
    if target in _HANDOFF_MOVES[current]:
        return
    needed = "an accepted" if target is HandoffStatus.COMPLETED else "a pending"
    if current is target:
        message = f"handoff '{handoff_id}' is already {current.value}"
    elif target is HandoffStatus.PENDING:
        message = f"handoff '{handoff_id}' is {current.value}; a handoff never becomes pending again"
    else:
        message = f"handoff '{handoff_id}' is {current.value}; only {needed} handoff can be {_VERB[target]}"
    if current is HandoffStatus.PENDING and target is HandoffStatus.COMPLETED:
        message += ": accept it first"
    raise InvalidState(message, {"handoff_id": handoff_id, "status": current.value, "requested": target.value})


def check_handoff_target(handoff: Handoff, agent: str, action: str) -> None:
    """Only the agent a handoff is addressed to may answer it."""
    if agent != handoff.target_agent:
        raise Forbidden(
            f"only {handoff.target_agent}, the agent handoff '{handoff.handoff_id}' is addressed to, may {action} it; "
            f"not {agent}",
            {"handoff_id": handoff.handoff_id, "agent": agent, "target_agent": handoff.target_agent},
        )


def accept_deadline(created_at: datetime, accept_seconds: int) -> datetime:
    """A pending handoff not accepted by then expires."""
    return created_at + timedelta(seconds=accept_seconds)


def is_handoff_overdue(handoff: Handoff, now: datetime, accept_seconds: int) -> bool:
    return handoff.status is HandoffStatus.PENDING and now >= accept_deadline(handoff.created_at, accept_seconds)


def answered(
    progress: HandoffProgress, target: HandoffStatus, *, actor: str, now: datetime, text: str | None = None
) -> HandoffProgress:
    """The progress after the move to `target` (checked by `check_handoff_move`); `text` is the
    decline reason or the completion summary."""
    if target is HandoffStatus.ACCEPTED:
        return replace(progress, status=target, accepted_at=now, accepted_by=actor)
    if target is HandoffStatus.COMPLETED:
        return replace(progress, status=target, completed_at=now, completion_summary=text)
    if target is HandoffStatus.DECLINED:
        return replace(progress, status=target, declined_at=now, decline_reason=text)
    return replace(progress, status=target, expired_at=now)
