"""Registering, reading, listing and completing sessions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from handoff.config import LifecycleSettings, LimitSettings
from handoff.domain.digest import Digest
from handoff.domain.lifecycle import role_of
from handoff.domain.models import LifecycleEvent, ParticipantRole, Session, SessionStatus
from handoff.domain.notices import Change
from handoff.domain.retention import DEFAULT_POLICY, policy_named
from handoff.domain.validation import parse_choice, validate_agent, validate_metadata, validate_session_key
from handoff.errors import AlreadyExists, Forbidden, InvalidInput, InvalidState
from handoff.services.paging import check_limit, decode_cursor, encode_cursor
from handoff.services.ports import Clock, NoRedaction, NoRetry, Retrier, SecretRedactor, UnitOfWorkFactory
from handoff.services.transitions import expire_if_due, record_event, transition


@dataclass(frozen=True, slots=True)
class SessionView:
    session: Session
    counts_by_type: dict[str, int]


@dataclass(frozen=True, slots=True)
class SessionPage:
    sessions: list[Session]
    next_cursor: str | None


class SessionService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        limits: LimitSettings,
        lifecycle: LifecycleSettings,
        retry: Retrier | None = None,
        redactor: SecretRedactor | None = None,
    ) -> None:
        self._redactor: SecretRedactor = redactor or NoRedaction()
        self._uow = uow
        self._retry = retry or NoRetry()
        self._clock = clock
        self._limits = limits
        self._lifecycle = lifecycle

    async def register(
        self,
        session_key: str,
        source_agent: str,
        metadata: Any,
        ttl_seconds: int | None,
        retention_policy: str | None = None,
    ) -> Session:
        key = validate_session_key(session_key, max_length=self._limits.max_key_length)
        agent = validate_agent(source_agent, field="source_agent", max_length=self._limits.max_key_length)
        meta, _ = self._redactor.redact_json(validate_metadata(metadata, max_bytes=self._limits.max_metadata_bytes))
        ttl = self._lifecycle.default_ttl_seconds if ttl_seconds is None else ttl_seconds
        if not 1 <= ttl <= self._lifecycle.max_ttl_seconds:
            raise InvalidInput(
                f"ttl_seconds must be between 1 and {self._lifecycle.max_ttl_seconds}, got {ttl}",
                {"field": "ttl_seconds"},
            )
        policy = policy_named(retention_policy or DEFAULT_POLICY).name
        now = self._clock.now()
        try:
            return await self._insert(key, agent, meta, ttl, policy, now)
        except AlreadyExists as raced:
            if raced.details:
                raise
            # The key is taken (registered before, or by a racing replica a moment ago): answer
            # with the session that holds it.
            async with self._uow(write=False) as uow:
                existing = await uow.sessions.find(key)
            if existing is None:
                raise
            raise _already_exists(existing) from None

    async def _insert(
        self, key: str, agent: str, meta: dict[str, Any], ttl: int, policy: str, now: datetime
    ) -> Session:
        # No existence check first: the unique key decides (AlreadyExists), and `register` then
        # reads the session that holds the key. Three statements and a commit, nothing read back.
        async with self._uow(write=True) as uow:
            session = await uow.sessions.add(
                session_key=key,
                source_agent=agent,
                metadata=meta,
                ttl_seconds=ttl,
                now=now,
                expires_at=now + timedelta(seconds=ttl),
                retention_policy=policy,
            )
            await uow.sessions.set_participant(session, agent, ParticipantRole.OWNER, now=now)
            await uow.events.add(
                LifecycleEvent(
                    session_id=session.id,
                    from_status=None,
                    to_status=SessionStatus.ACTIVE,
                    reason="registered",
                    actor=agent,
                    created_at=now,
                )
            )
            uow.announce(Change.sessions())
            await uow.commit()
        return session

    async def count_by_status(self) -> dict[str, int]:
        """Sessions per lifecycle state, for metrics (one read; states with none are left out)."""
        async with self._uow(write=False) as uow:
            counts = await uow.sessions.count_by_status()
        return {status.value: n for status, n in counts.items()}

    async def get(self, session_key: str) -> SessionView:
        key = validate_session_key(session_key, max_length=self._limits.max_key_length)

        async def read() -> Session:
            async with self._uow(write=False) as uow:
                return await uow.sessions.get(key, with_digest=True)

        session = await self._retry.call(read)
        return SessionView(session=session, counts_by_type=dict((session.digest or Digest()).counts))

    async def list_sessions(
        self,
        *,
        statuses: Sequence[SessionStatus] | None,
        agent: str | None,
        cursor: str | None,
        limit: int,
    ) -> SessionPage:
        limit = check_limit(limit, self._limits.max_page_size)
        after_id = decode_cursor(cursor, prefix="s") if cursor else None
        if agent is not None:
            agent = validate_agent(agent, field="agent", max_length=self._limits.max_key_length)

        async def read() -> list[Session]:
            async with self._uow(write=False) as uow:
                return await uow.sessions.list_sessions(
                    statuses=statuses, agent=agent, after_id=after_id, limit=limit + 1
                )

        rows = await self._retry.call(read)
        more = len(rows) > limit
        rows = rows[:limit]
        return SessionPage(rows, encode_cursor("s", rows[-1].id) if more and rows else None)

    async def complete(self, session_key: str, agent: str | None) -> Session:
        key = validate_session_key(session_key, max_length=self._limits.max_key_length)
        now = self._clock.now()
        async with self._uow(write=True) as uow:
            session = await uow.sessions.get(key, for_update=True)
            actor = session.owner_agent if agent is None else agent
            if await expire_if_due(uow, session, now=now):
                await uow.commit()
                raise InvalidState(f"session '{key}' is expired", {"status": "expired"})
            if role_of(session, actor) is not ParticipantRole.OWNER:
                raise Forbidden(
                    f"only the owner ({session.owner_agent}) may complete session '{key}'",
                    {"owner": session.owner_agent},
                )
            await transition(uow, session, SessionStatus.COMPLETED, reason="completed by owner", actor=actor, now=now)
            await uow.commit()
        return session

    async def set_retention(
        self, session_key: str, policy_name: str, actor: str, *, owner_only: bool = False
    ) -> Session:
        """Change a session's retention policy (an administrative act, recorded as a lifecycle event).

        `owner_only` is for an authenticated caller, whose name is proven: then only the session's
        owner may change it (an operator uses `handoff sessions retention`, which is not a client).
        """
        key = validate_session_key(session_key, max_length=self._limits.max_key_length)
        policy = policy_named(policy_name).name
        who = validate_agent(actor, field="actor", max_length=self._limits.max_key_length)
        now = self._clock.now()
        async with self._uow(write=True) as uow:
            session = await uow.sessions.get(key, for_update=True)
            if owner_only and who != session.owner_agent:
                raise Forbidden(
                    f"only the owner ({session.owner_agent}) may change the retention of session '{key}'; "
                    "an operator can with `handoff sessions retention`",
                    {"owner": session.owner_agent},
                )
            previous = session.retention_policy
            if previous != policy:
                await uow.sessions.set_retention(session, policy, now=now)
                await record_event(
                    uow,
                    session,
                    reason=f"retention policy {previous} -> {policy}",
                    actor=who,
                    now=now,
                    details={"from_policy": previous, "to_policy": policy},
                )
            await uow.commit()
        return session

    async def lifecycle(self, session_key: str, limit: int = 200) -> tuple[Session, list[LifecycleEvent]]:
        key = validate_session_key(session_key, max_length=self._limits.max_key_length)

        async def read() -> tuple[Session, list[LifecycleEvent]]:
            async with self._uow(write=False) as uow:
                session = await uow.sessions.get(key)
                return session, await uow.events.list_for_session(session.id, limit=limit)

        return await self._retry.call(read)


def public_summary(session: Session) -> dict[str, Any]:
    """What anyone may learn about a session that exists: no metadata, no content."""
    return {
        "session_key": session.session_key,
        "status": session.status.value,
        "source_agent": session.source_agent,
        "owner_agent": session.owner_agent,
        "entry_count": session.entry_count,
        "created_at": session.created_at.isoformat(),
    }


def _already_exists(existing: Session) -> AlreadyExists:
    return AlreadyExists(
        f"session '{existing.session_key}' already exists (status {existing.status.value}, "
        f"owner {existing.owner_agent}, {existing.entry_count} entries)",
        {"session": public_summary(existing)},
    )


def parse_session_status(value: str) -> SessionStatus:
    return parse_choice(SessionStatus, value, field="status")
