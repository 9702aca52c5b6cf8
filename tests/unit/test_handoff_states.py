"""The handoff state machine: which answers fit which state, and what each answer records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from handoff.config import Settings
from handoff.domain.lifecycle import answered, check_handoff_move
from handoff.domain.models import HandoffProgress, HandoffStatus, ParticipantRole
from handoff.errors import Forbidden, InvalidInput, InvalidState
from tests.unit.fakes import build_services

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEGAL = {
    (HandoffStatus.PENDING, HandoffStatus.ACCEPTED),
    (HandoffStatus.PENDING, HandoffStatus.DECLINED),
    (HandoffStatus.PENDING, HandoffStatus.EXPIRED),
    (HandoffStatus.ACCEPTED, HandoffStatus.COMPLETED),
}


@pytest.mark.parametrize("current", list(HandoffStatus))
@pytest.mark.parametrize("target", list(HandoffStatus))
def test_only_the_documented_moves_are_allowed_and_a_refusal_names_the_state(
    current: HandoffStatus, target: HandoffStatus
) -> None:
    if (current, target) in LEGAL:
        check_handoff_move("h1", current, target)
        return
    with pytest.raises(InvalidState) as refused:
        check_handoff_move("h1", current, target)
    assert refused.value.details == {"handoff_id": "h1", "status": current.value, "requested": target.value}
    assert f"is {current.value}" in refused.value.message or f"already {current.value}" in refused.value.message


def test_each_answer_records_when_and_what() -> None:
    accepted = answered(HandoffProgress(), HandoffStatus.ACCEPTED, actor="b", now=NOW)
    assert (accepted.status, accepted.accepted_at, accepted.accepted_by) == (HandoffStatus.ACCEPTED, NOW, "b")
    done = answered(accepted, HandoffStatus.COMPLETED, actor="b", now=NOW, text="shipped")
    assert (done.completed_at, done.completion_summary, done.accepted_by) == (NOW, "shipped", "b")
    declined = answered(HandoffProgress(), HandoffStatus.DECLINED, actor="b", now=NOW, text="not mine")
    assert (declined.declined_at, declined.decline_reason, declined.accepted_at) == (NOW, "not mine", None)
    expired = answered(HandoffProgress(), HandoffStatus.EXPIRED, actor="job:expire_handoffs", now=NOW)
    assert (expired.status, expired.expired_at) == (HandoffStatus.EXPIRED, NOW)


def test_completing_a_pending_handoff_says_to_accept_it_first() -> None:
    with pytest.raises(InvalidState, match="accept it first"):
        check_handoff_move("h1", HandoffStatus.PENDING, HandoffStatus.COMPLETED)


@pytest.mark.anyio
async def test_the_service_answers_on_the_in_memory_ports() -> None:
    settings = Settings()
    settings.lifecycle.handoff_accept_seconds = 60
    svc = build_services(settings)
    await svc.sessions.register("s1", "alice", {}, None)
    view = await svc.handoffs.request("s1", "bob", "full_handoff", {}, None)
    handoff_id = view.handoff.handoff_id
    assert view.accept_before is not None and view.handoff.target_prior_role is None

    with pytest.raises(Forbidden):
        await svc.handoffs.accept(handoff_id, "carol")
    with pytest.raises(InvalidInput):
        await svc.handoffs.decline(handoff_id, "bob", " ")
    declined, owner = await svc.handoffs.decline(handoff_id, "bob", "not now")
    assert (declined.handoff.status, owner) == (HandoffStatus.DECLINED, "alice")
    assert {p.agent: p.role for p in svc.uow.session("s1").participants or []} == {
        "alice": ParticipantRole.OWNER,
        "bob": ParticipantRole.READER,
    }

    svc.clock.advance(1)
    late = (await svc.handoffs.request("s1", "bob", "collaboration", {}, None)).handoff.handoff_id
    svc.clock.advance(61)
    with pytest.raises(InvalidState, match="expired"):
        await svc.handoffs.accept(late, "bob")
    assert (await svc.handoffs.get(late)).handoff.status is HandoffStatus.EXPIRED
    page = await svc.handoffs.list_handoffs(
        target_agent="bob", source_agent=None, status=None, session_key="s1", cursor=None, limit=1
    )
    assert [line.header.handoff_id for line in page.handoffs] == [late] and page.next_cursor is not None
