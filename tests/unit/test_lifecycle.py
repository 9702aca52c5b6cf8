"""The session state machine: legal moves, writable states, and who may write."""

from __future__ import annotations

from datetime import timedelta

import pytest

from handoff.domain.lifecycle import (
    WRITABLE_STATES,
    can_transition,
    check_transition,
    check_writable,
    is_past_expiry,
    role_of,
)
from handoff.domain.models import Participant, ParticipantRole, Session, SessionStatus
from handoff.errors import Forbidden, InvalidState
from tests.unit.fakes import EPOCH

S = SessionStatus

ALLOWED = {
    (S.ACTIVE, S.DORMANT),
    (S.ACTIVE, S.COMPLETED),
    (S.ACTIVE, S.EXPIRED),
    (S.DORMANT, S.ACTIVE),
    (S.DORMANT, S.COMPLETED),
    (S.DORMANT, S.EXPIRED),
    (S.COMPLETED, S.ARCHIVED),
    (S.EXPIRED, S.ARCHIVED),
}
ALL_PAIRS = [(a, b) for a in S for b in S]


def make_session(status: SessionStatus = S.ACTIVE, participants: dict[str, ParticipantRole] | None = None) -> Session:
    roles = participants if participants is not None else {"alice": ParticipantRole.OWNER}
    owner = next((a for a, r in roles.items() if r is ParticipantRole.OWNER), "alice")
    return Session(
        id=1,
        session_key="s-1",
        source_agent="alice",
        owner_agent=owner,
        status=status,
        metadata={},
        created_at=EPOCH,
        updated_at=EPOCH,
        last_activity_at=EPOCH,
        expires_at=EPOCH.replace(hour=13),
        ttl_seconds=3600,
        entry_count=0,
        content_bytes=0,
        participants=[Participant(agent=a, role=r, joined_at=EPOCH) for a, r in roles.items()],
    )


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed_transitions_pass(current: SessionStatus, target: SessionStatus) -> None:
    assert can_transition(current, target)
    check_transition(current, target)


@pytest.mark.parametrize(("current", "target"), sorted(set(ALL_PAIRS) - ALLOWED))
def test_forbidden_transitions_raise_invalid_state_naming_both_states(
    current: SessionStatus, target: SessionStatus
) -> None:
    assert not can_transition(current, target)
    with pytest.raises(InvalidState) as caught:
        check_transition(current, target)
    assert current.value in caught.value.message
    assert target.value in caught.value.message
    assert caught.value.details == {"status": current.value, "requested": target.value}


def test_archived_is_terminal() -> None:
    assert not any(can_transition(S.ARCHIVED, target) for target in S)


def test_no_state_transitions_to_itself() -> None:
    assert not any(can_transition(state, state) for state in S)


def test_only_active_and_dormant_are_writable() -> None:
    assert frozenset({S.ACTIVE, S.DORMANT}) == WRITABLE_STATES


@pytest.mark.parametrize("status", [S.ACTIVE, S.DORMANT])
def test_owner_may_write_in_writable_states(status: SessionStatus) -> None:
    check_writable(make_session(status), "alice")


@pytest.mark.parametrize("status", [S.COMPLETED, S.EXPIRED, S.ARCHIVED])
def test_write_to_non_writable_state_is_rejected_naming_the_state(status: SessionStatus) -> None:
    with pytest.raises(InvalidState) as caught:
        check_writable(make_session(status), "alice")
    assert status.value in caught.value.message
    assert "s-1" in caught.value.message
    assert caught.value.details["status"] == status.value
    assert caught.value.code == "invalid_state"


def test_state_is_checked_before_the_writer() -> None:
    # A stranger writing to an archived session learns about the state, not about permissions.
    with pytest.raises(InvalidState):
        check_writable(make_session(S.ARCHIVED), "mallory")


def test_collaborator_may_write() -> None:
    session = make_session(participants={"alice": ParticipantRole.OWNER, "bob": ParticipantRole.COLLABORATOR})
    check_writable(session, "bob")


@pytest.mark.parametrize(
    ("agent", "role"),
    [("bob", ParticipantRole.READER), ("carol", ParticipantRole.FORMER_OWNER), ("mallory", None)],
)
def test_non_writers_are_forbidden(agent: str, role: ParticipantRole | None) -> None:
    roles = {"dave": ParticipantRole.OWNER, "bob": ParticipantRole.READER, "carol": ParticipantRole.FORMER_OWNER}
    with pytest.raises(Forbidden) as caught:
        check_writable(make_session(participants=roles), agent)
    error = caught.value
    assert error.code == "forbidden"
    assert agent in error.message
    assert "writers are: dave" in error.message
    assert error.details == {"session_key": "s-1", "agent": agent, "role": role.value if role else None}
    if role is not None:
        assert role.value in error.message


def test_former_owner_is_forbidden_after_ownership_moves() -> None:
    session = make_session(participants={"alice": ParticipantRole.FORMER_OWNER, "bob": ParticipantRole.OWNER})
    check_writable(session, "bob")
    with pytest.raises(Forbidden, match="former_owner"):
        check_writable(session, "alice")


def test_role_of_returns_role_or_none() -> None:
    session = make_session(participants={"alice": ParticipantRole.OWNER, "bob": ParticipantRole.READER})
    assert role_of(session, "alice") is ParticipantRole.OWNER
    assert role_of(session, "bob") is ParticipantRole.READER
    assert role_of(session, "nobody") is None


@pytest.mark.parametrize("status", list(S))
def test_only_writable_sessions_can_be_past_expiry(status: SessionStatus) -> None:
    session = make_session(status)
    after = session.expires_at + timedelta(minutes=1)
    assert is_past_expiry(session, after) is (status in WRITABLE_STATES)


def test_expiry_starts_exactly_at_expires_at() -> None:
    session = make_session()
    assert not is_past_expiry(session, session.expires_at - timedelta(microseconds=1))
    assert is_past_expiry(session, session.expires_at)
