"""State changes shared by the use cases: each one writes its lifecycle event in the same transaction."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from handoff.domain.lifecycle import check_transition, is_past_expiry
from handoff.domain.models import LifecycleEvent, Session, SessionStatus
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
