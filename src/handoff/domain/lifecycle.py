"""The session state machine: which states exist, which moves are legal, who may write.

active ⇄ dormant          (idle; any write or handoff reactivates)
active|dormant → completed (the owner says the work is done)
active|dormant → expired   (TTL passed without activity)
completed|expired → archived (read-only history)
"""

from __future__ import annotations

from datetime import datetime

from handoff.domain.models import WRITER_ROLES, ParticipantRole, Session, SessionStatus
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
