"""The use cases against in-memory ports: sessions, appends, handoffs, lifecycle, paging."""

from __future__ import annotations

from datetime import timedelta

import pytest

from handoff.domain.brief import MIN_TOKEN_BUDGET, estimate_tokens
from handoff.domain.models import (
    ContextType,
    HandoffStatus,
    HandoffType,
    ParticipantRole,
    SessionStatus,
)
from handoff.errors import AlreadyExists, Conflict, Forbidden, InvalidInput, InvalidState, NotFound
from handoff.services.paging import encode_cursor
from tests.unit.fakes import Services, build_services

pytestmark = pytest.mark.anyio


@pytest.fixture
def svc() -> Services:
    return build_services()


async def register(svc: Services, key: str = "s1", agent: str = "alice", **kwargs: object) -> None:
    await svc.sessions.register(key, agent, kwargs.pop("metadata", {}), kwargs.pop("ttl_seconds", None))


async def append(svc: Services, content: str, key: str = "s1", **kwargs: object):  # type: ignore[no-untyped-def]
    return await svc.context.append(
        key,
        str(kwargs.get("context_type", "message")),
        content,
        kwargs.get("metadata", {}),
        kwargs.get("agent"),  # type: ignore[arg-type]
        kwargs.get("idempotency_key"),  # type: ignore[arg-type]
    )


def roles(svc: Services, key: str = "s1") -> dict[str, ParticipantRole]:
    return {p.agent: p.role for p in svc.uow.session(key).participants}


# -- the fake itself -------------------------------------------------------------------------


async def test_fake_unit_of_work_discards_uncommitted_changes(svc: Services) -> None:
    await register(svc)
    with pytest.raises(RuntimeError):
        async with svc.uow(write=True) as uow:
            session = await uow.sessions.get("s1", for_update=True)
            await uow.sessions.set_status(session, SessionStatus.DORMANT, now=svc.clock.now())
            assert (await uow.sessions.get("s1")).status is SessionStatus.DORMANT
            raise RuntimeError("boom")
    assert svc.uow.session("s1").status is SessionStatus.ACTIVE
    async with svc.uow(write=True) as uow:
        session = await uow.sessions.get("s1")
        await uow.sessions.set_status(session, SessionStatus.DORMANT, now=svc.clock.now())
    assert svc.uow.session("s1").status is SessionStatus.ACTIVE


# -- register --------------------------------------------------------------------------------


async def test_register_creates_an_active_session_owned_by_its_source(svc: Services) -> None:
    session = await svc.sessions.register("s1", "alice", {"repo": "x"}, None)
    ttl = svc.settings.lifecycle.default_ttl_seconds
    assert session.status is SessionStatus.ACTIVE
    assert (session.source_agent, session.owner_agent) == ("alice", "alice")
    assert session.metadata == {"repo": "x"}
    assert session.expires_at == svc.clock.now() + timedelta(seconds=ttl)
    assert roles(svc) == {"alice": ParticipantRole.OWNER}
    events = svc.uow.events_of("s1")
    assert [(e.from_status, e.to_status, e.reason, e.actor) for e in events] == [
        (None, SessionStatus.ACTIVE, "registered", "alice")
    ]


async def test_register_honours_ttl_and_refuses_out_of_range_ttl(svc: Services) -> None:
    session = await svc.sessions.register("s1", "alice", {}, 60)
    assert session.expires_at - session.created_at == timedelta(seconds=60)
    for bad in (0, -5, svc.settings.lifecycle.max_ttl_seconds + 1):
        with pytest.raises(InvalidInput, match="ttl_seconds"):
            await svc.sessions.register(f"s-{bad}", "alice", {}, bad)
    assert list(svc.uow.state.sessions.values())[-1].session_key == "s1"


async def test_duplicate_register_shows_only_the_public_summary(svc: Services) -> None:
    await svc.sessions.register("s1", "alice", {"api_token": "s3cr3t-value"}, None)
    await append(svc, "private content")
    with pytest.raises(AlreadyExists) as caught:
        await svc.sessions.register("s1", "mallory", {"x": 1}, None)
    error = caught.value
    assert error.code == "already_exists"
    assert "s1" in error.message and "active" in error.message
    assert set(error.details) == {"session"}
    assert error.details["session"] == {
        "session_key": "s1",
        "status": "active",
        "source_agent": "alice",
        "owner_agent": "alice",
        "entry_count": 1,
        "created_at": svc.clock.now().isoformat(),
    }
    leaked = repr(error.to_dict())
    assert "s3cr3t" not in leaked and "private content" not in leaked
    stored = svc.uow.session("s1")
    assert (stored.owner_agent, stored.metadata) == ("alice", {"api_token": "s3cr3t-value"})
    assert len(svc.uow.events_of("s1")) == 1


async def test_register_refuses_bad_keys_before_touching_storage(svc: Services) -> None:
    with pytest.raises(InvalidInput):
        await svc.sessions.register("bad/key", "alice", {}, None)
    with pytest.raises(InvalidInput):
        await svc.sessions.register("ok", "alice", "not an object", None)
    assert svc.uow.opened == []


async def test_get_unknown_session_is_not_found(svc: Services) -> None:
    with pytest.raises(NotFound, match="nope"):
        await svc.sessions.get("nope")


# -- append ----------------------------------------------------------------------------------


async def test_appends_get_gap_free_sequence_numbers_and_update_counters(svc: Services) -> None:
    await register(svc)
    sizes = 0
    for i, kind in enumerate(["message", "file", "tool_call", "system"] * 3, start=1):
        content = f"entry {i} é"
        sizes += len(content.encode())
        svc.clock.advance(1)
        result = await append(svc, content, context_type=kind)
        assert result.entry.sequence_number == i
        assert result.entry.context_type is ContextType(kind)
        assert not result.replayed
    stored = svc.uow.session("s1")
    assert stored.entry_count == 12
    assert stored.content_bytes == sizes
    assert stored.last_activity_at == svc.clock.now()
    assert stored.expires_at == svc.clock.now() + timedelta(seconds=stored.ttl_seconds)
    assert [e.sequence_number for e in svc.uow.entries_of("s1")] == list(range(1, 13))
    view = await svc.sessions.get("s1")
    assert view.counts_by_type == {"message": 3, "file": 3, "tool_call": 3, "system": 3}


async def test_append_defaults_the_agent_to_the_owner(svc: Services) -> None:
    await register(svc)
    result = await append(svc, "hello")
    assert result.entry.agent == "alice"


async def test_append_to_unknown_session_is_not_found_and_writes_nothing(svc: Services) -> None:
    with pytest.raises(NotFound):
        await append(svc, "x", key="ghost")
    assert svc.uow.commits == 0


async def test_append_with_unknown_context_type_lists_the_allowed_ones(svc: Services) -> None:
    await register(svc)
    with pytest.raises(InvalidInput, match="message, file, tool_call, system"):
        await append(svc, "x", context_type="note")
    assert svc.uow.entries_of("s1") == []


async def test_append_over_the_size_limit_is_refused(svc: Services) -> None:
    svc = build_services(
        svc.settings.model_copy(update={"limits": svc.settings.limits.model_copy(update={"max_content_bytes": 10})})
    )
    await register(svc)
    await append(svc, "x" * 10)
    with pytest.raises(InvalidInput, match="11 bytes"):
        await append(svc, "x" * 11)
    assert svc.uow.session("s1").entry_count == 1


async def test_idempotent_retry_returns_the_original_entry(svc: Services) -> None:
    await register(svc)
    first = await append(svc, "once", idempotency_key="k-1")
    await append(svc, "other")
    svc.clock.advance(5)
    again = await append(svc, "once", idempotency_key="k-1")
    assert again.replayed
    assert again.entry == first.entry
    assert svc.uow.session("s1").entry_count == 2
    assert [e.content for e in svc.uow.entries_of("s1")] == ["once", "other"]


async def test_idempotency_key_reused_for_different_content_is_a_conflict(svc: Services) -> None:
    await register(svc)
    await append(svc, "once", idempotency_key="k-1")
    with pytest.raises(Conflict, match="k-1") as caught:
        await append(svc, "different", idempotency_key="k-1")
    assert caught.value.details == {"sequence_number": 1}
    with pytest.raises(Conflict):
        await append(svc, "once", idempotency_key="k-1", context_type="system")
    assert svc.uow.session("s1").entry_count == 1


async def test_idempotency_keys_are_scoped_per_session(svc: Services) -> None:
    await register(svc, "s1")
    await register(svc, "s2")
    await append(svc, "a", key="s1", idempotency_key="k")
    other = await append(svc, "b", key="s2", idempotency_key="k")
    assert not other.replayed and other.entry.content == "b"


@pytest.mark.parametrize("key", ["", "k" * 201, "nul\x00"])
async def test_bad_idempotency_keys_are_refused(svc: Services, key: str) -> None:
    await register(svc)
    with pytest.raises(InvalidInput) as caught:
        await append(svc, "x", idempotency_key=key)
    assert caught.value.details["field"] == "idempotency_key"


async def test_append_digest_feeds_the_brief(svc: Services) -> None:
    await register(svc)
    await append(svc, "Please add caching", metadata={"role": "user"})
    await append(svc, "Decision: use an LRU\nTODO: measure hit rate")
    view = await svc.handoffs.request("s1", "bob", "context_transfer", {}, None)
    assert "> Please add caching" in view.handoff.brief
    assert "- (#2) use an LRU" in view.handoff.brief
    assert "- [ ] measure hit rate (#2)" in view.handoff.brief
    assert view.handoff.up_to_sequence == 2


# -- expiry and reactivation -----------------------------------------------------------------


async def test_append_after_ttl_is_rejected_as_expired_and_the_expiry_is_committed(svc: Services) -> None:
    await register(svc, ttl_seconds=60)
    svc.clock.advance(60)
    with pytest.raises(InvalidState, match="expired") as caught:
        await append(svc, "too late")
    assert caught.value.details == {"session_key": "s1", "status": "expired"}
    stored = svc.uow.session("s1")
    assert stored.status is SessionStatus.EXPIRED
    assert stored.entry_count == 0
    last = svc.uow.events_of("s1")[-1]
    assert (last.from_status, last.to_status, last.reason, last.actor) == (
        SessionStatus.ACTIVE,
        SessionStatus.EXPIRED,
        "ttl elapsed",
        "system",
    )
    assert last.created_at == svc.clock.now()
    # A second attempt now meets the stored state, not another expiry.
    with pytest.raises(InvalidState, match="expired"):
        await append(svc, "still too late")
    assert len(svc.uow.events_of("s1")) == 2


async def test_activity_slides_the_expiry(svc: Services) -> None:
    await register(svc, ttl_seconds=60)
    for _ in range(5):
        svc.clock.advance(59)
        await append(svc, "keep alive")
    assert svc.uow.session("s1").status is SessionStatus.ACTIVE
    svc.clock.advance(60)
    with pytest.raises(InvalidState, match="expired"):
        await append(svc, "late")


async def test_handoff_after_ttl_is_rejected_and_the_expiry_is_committed(svc: Services) -> None:
    await register(svc, ttl_seconds=10)
    svc.clock.advance(11)
    with pytest.raises(InvalidState, match="expired"):
        await svc.handoffs.request("s1", "bob", "full_handoff", {}, None)
    assert svc.uow.session("s1").status is SessionStatus.EXPIRED
    assert svc.uow.session("s1").owner_agent == "alice"
    assert svc.uow.state.handoffs == {}


async def test_complete_after_ttl_is_rejected_as_expired(svc: Services) -> None:
    await register(svc, ttl_seconds=10)
    svc.clock.advance(10)
    with pytest.raises(InvalidState, match="expired"):
        await svc.sessions.complete("s1", "alice")
    assert svc.uow.session("s1").status is SessionStatus.EXPIRED


async def test_append_reactivates_a_dormant_session(svc: Services) -> None:
    await register(svc)
    await svc.uow.set_status("s1", SessionStatus.DORMANT, svc.clock.now())
    svc.clock.advance(30)
    result = await append(svc, "back again")
    assert result.entry.sequence_number == 1
    assert result.session.status is SessionStatus.ACTIVE
    assert svc.uow.session("s1").status is SessionStatus.ACTIVE
    last = svc.uow.events_of("s1")[-1]
    assert (last.from_status, last.to_status, last.reason, last.actor) == (
        SessionStatus.DORMANT,
        SessionStatus.ACTIVE,
        "activity",
        "alice",
    )


async def test_forbidden_append_to_dormant_session_leaves_it_dormant(svc: Services) -> None:
    await register(svc)
    await svc.uow.set_status("s1", SessionStatus.DORMANT, svc.clock.now())
    with pytest.raises(Forbidden):
        await append(svc, "intruder", agent="mallory")
    assert svc.uow.session("s1").status is SessionStatus.DORMANT
    assert svc.uow.entries_of("s1") == []


async def test_handoff_reactivates_a_dormant_session(svc: Services) -> None:
    await register(svc)
    await svc.uow.set_status("s1", SessionStatus.DORMANT, svc.clock.now())
    await svc.handoffs.request("s1", "bob", "collaboration", {}, None)
    assert svc.uow.session("s1").status is SessionStatus.ACTIVE


@pytest.mark.parametrize("status", [SessionStatus.COMPLETED, SessionStatus.EXPIRED, SessionStatus.ARCHIVED])
async def test_append_to_non_writable_session_names_its_state(svc: Services, status: SessionStatus) -> None:
    await register(svc)
    await svc.uow.set_status("s1", status, svc.clock.now())
    with pytest.raises(InvalidState, match=status.value) as caught:
        await append(svc, "x")
    assert caught.value.details["status"] == status.value
    assert svc.uow.entries_of("s1") == []


# -- handoffs --------------------------------------------------------------------------------


async def test_full_handoff_moves_ownership_to_the_target(svc: Services) -> None:
    await register(svc)
    await append(svc, "work so far")
    view = await svc.handoffs.request("s1", "bob", "full_handoff", {"note": "finish it"}, None)
    handoff = view.handoff
    assert (handoff.source_agent, handoff.target_agent) == ("alice", "bob")
    assert handoff.handoff_type is HandoffType.FULL_HANDOFF
    assert handoff.status is HandoffStatus.PENDING
    assert "- note: finish it" in handoff.brief
    assert 'update_context(session_key="s1", agent="bob"' in handoff.instructions
    assert f"handoff://handoffs/{handoff.handoff_id}" in view.resources
    stored = svc.uow.session("s1")
    assert stored.owner_agent == "bob"
    assert roles(svc) == {"alice": ParticipantRole.FORMER_OWNER, "bob": ParticipantRole.OWNER}
    assert svc.uow.events_of("s1")[-1].details == {
        "from_owner": "alice",
        "to_owner": "bob",
        "handoff_type": "full_handoff",
        "handoff_id": handoff.handoff_id,
    }

    with pytest.raises(Forbidden, match="former_owner"):
        await append(svc, "can I still?", agent="alice")
    result = await append(svc, "taking over", agent="bob")
    assert (result.entry.sequence_number, result.entry.agent) == (2, "bob")
    assert (await append(svc, "default agent")).entry.agent == "bob"


async def test_collaboration_lets_both_write(svc: Services) -> None:
    await register(svc)
    await svc.handoffs.request("s1", "bob", "collaboration", {}, None)
    assert svc.uow.session("s1").owner_agent == "alice"
    assert roles(svc) == {"alice": ParticipantRole.OWNER, "bob": ParticipantRole.COLLABORATOR}
    assert (await append(svc, "a", agent="alice")).entry.sequence_number == 1
    assert (await append(svc, "b", agent="bob")).entry.sequence_number == 2


async def test_context_transfer_gives_a_read_copy(svc: Services) -> None:
    await register(svc)
    view = await svc.handoffs.request("s1", "bob", "context_transfer", {}, None)
    assert "cannot write" in view.handoff.instructions
    assert svc.uow.session("s1").owner_agent == "alice"
    assert roles(svc) == {"alice": ParticipantRole.OWNER, "bob": ParticipantRole.READER}
    with pytest.raises(Forbidden, match="reader"):
        await append(svc, "no", agent="bob")
    await append(svc, "owner continues", agent="alice")


async def test_a_handoff_never_demotes_a_participant(svc: Services) -> None:
    await register(svc)
    await svc.handoffs.request("s1", "bob", "collaboration", {}, None)
    events_before = len(svc.uow.events_of("s1"))
    await svc.handoffs.request("s1", "bob", "context_transfer", {}, None)
    assert roles(svc)["bob"] is ParticipantRole.COLLABORATOR
    assert len(svc.uow.events_of("s1")) == events_before
    await append(svc, "still writing", agent="bob")


async def test_handoff_to_the_owner_is_refused(svc: Services) -> None:
    await register(svc)
    with pytest.raises(InvalidInput, match="already owns"):
        await svc.handoffs.request("s1", "alice", "collaboration", {}, None)


async def test_handoff_with_unknown_type_is_refused(svc: Services) -> None:
    await register(svc)
    with pytest.raises(InvalidInput, match="context_transfer, full_handoff, collaboration"):
        await svc.handoffs.request("s1", "bob", "transfer", {}, None)


async def test_handoff_of_completed_session_is_refused_naming_the_state(svc: Services) -> None:
    await register(svc)
    await svc.sessions.complete("s1", "alice")
    with pytest.raises(InvalidState, match="completed"):
        await svc.handoffs.request("s1", "bob", "full_handoff", {}, None)
    assert svc.uow.state.handoffs == {}


async def test_handoff_is_stored_and_readable_by_id(svc: Services) -> None:
    await register(svc)
    view = await svc.handoffs.request("s1", "bob", "context_transfer", {"k": [1, 2]}, 300)
    again = await svc.handoffs.get(view.handoff.handoff_id)
    assert again.handoff == view.handoff
    assert again.resources == view.resources
    with pytest.raises(NotFound):
        await svc.handoffs.get("0" * 32)
    for bad in ("", "../etc", "x" * 65):
        with pytest.raises(InvalidInput):
            await svc.handoffs.get(bad)


async def test_token_budget_bounds(svc: Services) -> None:
    await register(svc)
    for i in range(50):
        await append(svc, f"Decision: choice {i} " + "because " * 30)
    maximum = svc.settings.brief.max_token_budget
    for bad in (MIN_TOKEN_BUDGET - 1, 0, -1, maximum + 1):
        with pytest.raises(InvalidInput, match="token_budget"):
            await svc.handoffs.request("s1", "bob", "collaboration", {}, bad)
    for budget in (MIN_TOKEN_BUDGET, 200, maximum):
        handoff = (await svc.handoffs.request("s1", "bob", "collaboration", {}, budget)).handoff
        assert handoff.token_budget == budget
        assert handoff.brief_tokens == estimate_tokens(handoff.brief) <= budget
    default = (await svc.handoffs.request("s1", "bob", "collaboration", {}, None)).handoff
    assert default.token_budget == svc.settings.brief.default_token_budget


# -- complete --------------------------------------------------------------------------------


async def test_owner_completes_the_session_and_writes_stop(svc: Services) -> None:
    await register(svc)
    session = await svc.sessions.complete("s1", "alice")
    assert session.status is SessionStatus.COMPLETED
    last = svc.uow.events_of("s1")[-1]
    assert (last.from_status, last.to_status, last.actor) == (SessionStatus.ACTIVE, SessionStatus.COMPLETED, "alice")
    with pytest.raises(InvalidState, match="completed"):
        await append(svc, "after the end")
    with pytest.raises(InvalidState, match="completed"):
        await svc.sessions.complete("s1", "alice")


async def test_only_the_current_owner_may_complete(svc: Services) -> None:
    await register(svc)
    await svc.handoffs.request("s1", "bob", "full_handoff", {}, None)
    for agent in ("alice", "carol"):
        with pytest.raises(Forbidden, match="bob"):
            await svc.sessions.complete("s1", agent)
    assert svc.uow.session("s1").status is SessionStatus.ACTIVE
    assert (await svc.sessions.complete("s1", None)).status is SessionStatus.COMPLETED


async def test_lifecycle_lists_every_state_change_in_order(svc: Services) -> None:
    await register(svc)
    await svc.uow.set_status("s1", SessionStatus.DORMANT, svc.clock.now())
    await append(svc, "wake up")
    await svc.sessions.complete("s1", "alice")
    _, events = await svc.sessions.lifecycle("s1")
    assert [e.to_status for e in events] == [SessionStatus.ACTIVE, SessionStatus.ACTIVE, SessionStatus.COMPLETED]
    assert [e.reason for e in events] == ["registered", "activity", "completed by owner"]


# -- paging ----------------------------------------------------------------------------------


async def test_context_pages_cover_every_entry_once_in_order(svc: Services) -> None:
    await register(svc)
    for i in range(1, 26):
        await append(svc, f"e{i}", context_type="file" if i % 5 == 0 else "message")
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = await svc.context.page("s1", cursor=cursor, limit=10, context_types=None)
        pages += 1
        seen += [e.sequence_number for e in page.entries]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(range(1, 26))
    assert pages == 3
    assert page.counts_by_type == {"message": 20, "file": 5}


async def test_exact_multiple_of_the_page_size_ends_without_an_empty_page(svc: Services) -> None:
    await register(svc)
    for i in range(10):
        await append(svc, f"e{i}")
    page = await svc.context.page("s1", cursor=None, limit=10, context_types=None)
    assert len(page.entries) == 10
    assert page.next_cursor is None


async def test_context_pages_filter_by_type(svc: Services) -> None:
    await register(svc)
    for i in range(1, 13):
        await append(svc, f"e{i}", context_type="file" if i % 3 == 0 else "message")
    first = await svc.context.page("s1", cursor=None, limit=2, context_types=["file"])
    assert [e.sequence_number for e in first.entries] == [3, 6]
    second = await svc.context.page("s1", cursor=first.next_cursor, limit=2, context_types=["file"])
    assert [e.sequence_number for e in second.entries] == [9, 12]
    assert second.next_cursor is None
    with pytest.raises(InvalidInput, match="context_type"):
        await svc.context.page("s1", cursor=None, limit=2, context_types=["files"])


@pytest.mark.parametrize(
    "cursor",
    ["garbage!!", "Zm9v", encode_cursor("s", 3), encode_cursor("c", -1), "\x00", "YzphYmM"],
)
async def test_invalid_context_cursor_is_invalid_input(svc: Services, cursor: str) -> None:
    await register(svc)
    with pytest.raises(InvalidInput, match="cursor") as caught:
        await svc.context.page("s1", cursor=cursor, limit=10, context_types=None)
    assert caught.value.details == {"field": "cursor"}


@pytest.mark.parametrize("limit", [0, -1, 501])
async def test_page_limit_out_of_range_is_invalid_input(svc: Services, limit: int) -> None:
    await register(svc)
    with pytest.raises(InvalidInput, match="limit"):
        await svc.context.page("s1", cursor=None, limit=limit, context_types=None)


async def test_archived_session_stays_readable(svc: Services) -> None:
    await register(svc)
    await append(svc, "history")
    await svc.sessions.complete("s1", "alice")
    await svc.uow.set_status("s1", SessionStatus.ARCHIVED, svc.clock.now())
    page = await svc.context.page("s1", cursor=None, limit=10, context_types=None)
    assert page.session.status is SessionStatus.ARCHIVED
    assert [e.content for e in page.entries] == ["history"]


async def test_session_listing_pages_and_filters(svc: Services) -> None:
    for i in range(7):
        await register(svc, f"s{i}", "alice" if i % 2 else "bob")
    await svc.sessions.complete("s0", "bob")
    page = await svc.sessions.list_sessions(statuses=None, agent=None, cursor=None, limit=3)
    keys = [s.session_key for s in page.sessions]
    while page.next_cursor:
        page = await svc.sessions.list_sessions(statuses=None, agent=None, cursor=page.next_cursor, limit=3)
        keys += [s.session_key for s in page.sessions]
    assert keys == [f"s{i}" for i in range(7)]
    bob_active = await svc.sessions.list_sessions(statuses=[SessionStatus.ACTIVE], agent="bob", cursor=None, limit=10)
    assert [s.session_key for s in bob_active.sessions] == ["s2", "s4", "s6"]
    with pytest.raises(InvalidInput, match="cursor"):
        await svc.sessions.list_sessions(statuses=None, agent=None, cursor=encode_cursor("c", 1), limit=3)
