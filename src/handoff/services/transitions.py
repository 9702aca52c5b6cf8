"""State changes shared by the use cases: each one writes its lifecycle event in the same transaction."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from handoff.domain.lifecycle import ROLE_RANK, answered, check_handoff_move, check_transition, is_past_expiry, role_of
from handoff.domain.models import (
    Handoff,
    HandoffStatus,
    HandoffType,
    LifecycleEvent,
    ParticipantRole,
    Session,
    SessionStatus,
)
from handoff.domain.notices import Change
from handoff.errors import Conflict, NotFound
from handoff.services.ports import UnitOfWork


async def transition(
    uow: UnitOfWork,
    session: Session,
    target: SessionStatus,
    *,
    reason: str,
    actor: str,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    check_transition(session.status, target)
    uow.announce(Change.session(session.session_key))
    if SessionStatus.ACTIVE in (session.status, target) or SessionStatus.DORMANT in (session.status, target):
        uow.announce(Change.sessions())  # the set of live (active or dormant) sessions may change
    previous = session.status
    await uow.sessions.set_status(session, target, now=now)
    await uow.events.add(
        LifecycleEvent(
            session_id=session.id,
            from_status=previous,
            to_status=target,
            reason=reason,
            actor=actor,
            created_at=now,
            details=details or {},
        )
    )


async def record_event(
    uow: UnitOfWork, session: Session, *, reason: str, actor: str, now: datetime, details: dict[str, Any]
) -> None:
    """An event that changes who may do what without changing the status (e.g. ownership)."""
    uow.announce(Change.session(session.session_key))
    await uow.events.add(
        LifecycleEvent(
            session_id=session.id,
            from_status=session.status,
            to_status=session.status,
            reason=reason,
            actor=actor,
            created_at=now,
            details=details,
        )
    )


async def expire_if_due(uow: UnitOfWork, session: Session, *, now: datetime) -> bool:
    """Move a session whose TTL has run out to `expired`. The caller commits, then refuses the write."""
    if not is_past_expiry(session, now):
        return False
    await transition(uow, session, SessionStatus.EXPIRED, reason="ttl elapsed", actor="system", now=now)
    return True


async def reactivate_if_dormant(uow: UnitOfWork, session: Session, *, actor: str, now: datetime) -> None:
    if session.status is SessionStatus.DORMANT:
        await transition(uow, session, SessionStatus.ACTIVE, reason="activity", actor=actor, now=now)


def next_expiry(session: Session, now: datetime) -> datetime:
    """Expiry slides with activity: a session expires `ttl_seconds` after its last write."""
    return now + timedelta(seconds=session.ttl_seconds)


async def lock_handoff(uow: UnitOfWork, handoff_id: str) -> tuple[Handoff, Session]:
    """A handoff and its session, the session locked; the handoff's progress read after the lock.

    Every answer to a handoff takes its session's lock first (as request_handoff does), so once it
    is held the progress read here is the latest, and answers to one handoff queue behind each other.
    """
    handoff = await uow.handoffs.get(handoff_id)
    session = await uow.sessions.get(handoff.session_key, for_update=True)
    progress = await uow.handoffs.find_progress(handoff_id)
    if progress is None:  # purged with its session meanwhile
        raise NotFound(f"no handoff with id '{handoff_id}'", {"handoff_id": handoff_id})
    return replace(handoff, progress=progress), session


async def move_handoff(
    uow: UnitOfWork,
    session: Session,
    handoff: Handoff,
    target: HandoffStatus,
    *,
    actor: str,
    now: datetime,
    text: str | None = None,
) -> Handoff:
    """Move a handoff to `target` and record it; a handoff never taken up (declined, expired) gives back
    what it granted. `session` is the handoff's session, locked by the caller.

    The UPDATE is conditional on the status read before, so of two replicas answering at once exactly
    one moves the row; the other is told the state it found.
    """
    check_handoff_move(handoff.handoff_id, handoff.status, target)
    uow.announce(Change.handoff(handoff.handoff_id))
    uow.announce(Change.inbox(handoff.target_agent))  # the inbox lists pending handoffs only
    progress = answered(handoff.progress, target, actor=actor, now=now, text=text)
    if not await uow.handoffs.set_progress(handoff.handoff_id, expected=handoff.status, progress=progress):
        current = await uow.handoffs.find_progress(handoff.handoff_id)
        if current is None:
            raise NotFound(f"no handoff with id '{handoff.handoff_id}'", {"handoff_id": handoff.handoff_id})
        check_handoff_move(handoff.handoff_id, current.status, target)  # raises, naming the state it is in
        raise Conflict("the handoff changed while it was being answered; try again", {"status": current.status.value})
    details: dict[str, Any] = {
        "handoff_id": handoff.handoff_id,
        "handoff_type": handoff.handoff_type.value,
        "source_agent": handoff.source_agent,
        "target_agent": handoff.target_agent,
        "from_status": handoff.status.value,
        "to_status": target.value,
    }
    if text is not None:
        details["reason" if target is HandoffStatus.DECLINED else "summary"] = text
    await record_event(uow, session, reason=f"handoff {target.value}", actor=actor, now=now, details=details)
    moved = replace(handoff, progress=progress)
    if target in (HandoffStatus.DECLINED, HandoffStatus.EXPIRED):
        await give_back(uow, session, moved, actor=actor, now=now)
    return moved


async def give_back(uow: UnitOfWork, session: Session, handoff: Handoff, *, actor: str, now: datetime) -> bool:
    """Undo the rights a declined or expired handoff granted, unless the session has moved on since.

    full_handoff: if the target still owns the session, it goes back to the source (the owner when
    the handoff was made) and the target returns to its role before. collaboration: the target
    stops writing unless it was a writer before. context_transfer granted only reading: nothing.
    """
    target, source = handoff.target_agent, handoff.source_agent
    before = handoff.target_prior_role or ParticipantRole.READER
    details = {"handoff_id": handoff.handoff_id, "handoff_status": handoff.status.value}
    if handoff.handoff_type is HandoffType.FULL_HANDOFF:
        if session.owner_agent != target:
            return False  # the target handed it on (or it changed hands otherwise): leave it there
        await uow.sessions.set_participant(session, target, before, now=now)
        await uow.sessions.set_participant(session, source, ParticipantRole.OWNER, now=now)
        await uow.sessions.set_owner(session, source, now=now)
        await record_event(
            uow,
            session,
            reason=f"ownership returned: handoff {handoff.status.value}",
            actor=actor,
            now=now,
            details={**details, "from_owner": target, "to_owner": source, "role": before.value},
        )
        return True
    if handoff.handoff_type is HandoffType.COLLABORATION:
        if role_of(session, target) is not ParticipantRole.COLLABORATOR:
            return False
        if ROLE_RANK[before] >= ROLE_RANK[ParticipantRole.COLLABORATOR]:
            return False  # it was a writer before this handoff
        await uow.sessions.set_participant(session, target, before, now=now)
        await record_event(
            uow,
            session,
            reason=f"{target} is a {before.value} again: handoff {handoff.status.value}",
            actor=actor,
            now=now,
            details={**details, "agent": target, "role": before.value},
        )
        return True
    return False
