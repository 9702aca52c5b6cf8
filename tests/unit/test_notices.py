"""Change notices: their wire form, the URIs they map to, and which URIs can be subscribed to."""

from __future__ import annotations

import json

import pytest

from handoff.domain.notices import Change, Topic, decode, encode
from handoff.errors import HandoffError, InvalidInput, NotFound
from handoff.mcp.subscriptions import parse_uri, uris_of
from tests.unit.fakes import build_services


def test_changes_round_trip_in_batches_under_the_byte_cap_without_duplicates() -> None:
    changes = [Change.session(f"job-{i:03}") for i in range(200)] + [Change.session("job-000"), Change.sessions()]
    texts = encode(changes, max_bytes=500)
    assert len(texts) > 1
    assert all(len(t.encode()) <= 500 for t in texts)
    decoded = [c for t in texts for c in decode(t)]
    assert decoded == list(dict.fromkeys(changes))


def test_a_change_too_large_for_one_message_is_dropped_not_split() -> None:
    assert encode([Change.inbox("x" * 600)], max_bytes=500) == []


@pytest.mark.parametrize("text", ["", "{", "[1]", '[["nope", "k"]]', '{"a": 1}', '[["session"]]', b"\xff"])
def test_what_does_not_decode_is_ignored(text: str | bytes) -> None:
    assert list(decode(text)) == []


def test_decode_keeps_the_good_items_of_a_mixed_message() -> None:
    text = json.dumps([["handoff", "h1"], ["bogus", "x"], ["inbox", "codex"]])
    assert list(decode(text)) == [Change.handoff("h1"), Change.inbox("codex")]


@pytest.mark.parametrize(
    ("uri", "change", "canonical"),
    [
        ("handoff://sessions", Change.sessions(), "handoff://sessions"),
        ("handoff://sessions?cursor=abc", Change.sessions(), "handoff://sessions"),
        ("handoff://sessions/build:42", Change.session("build:42"), "handoff://sessions/build:42"),
        ("handoff://sessions/a/context?limit=5", Change.session("a"), "handoff://sessions/a/context"),
        ("handoff://sessions/a%2Bb/lifecycle", Change.session("a+b"), "handoff://sessions/a+b/lifecycle"),
        ("handoff://handoffs/abc123", Change.handoff("abc123"), "handoff://handoffs/abc123"),
        ("handoff://agents/codex/inbox", Change.inbox("codex"), "handoff://agents/codex/inbox"),
        ("handoff://agents/%EF%BD%83odex/inbox", Change.inbox("codex"), "handoff://agents/codex/inbox"),
    ],
)
def test_subscribable_uris_and_what_they_watch(uri: str, change: Change, canonical: str) -> None:
    assert parse_uri(uri, max_key_length=128) == (change, canonical)
    assert canonical.split("?")[0] in uris_of(change)


@pytest.mark.parametrize(
    "uri",
    [
        "test://watched-resource",
        "handoff://sessions/a/context/more",
        "handoff://sessions/a/entries",
        "handoff://handoffs",
        "handoff://agents/codex",
        "handoff://agents/codex/outbox",
        "handoff://other/x",
        "handoff://sessions/a#frag",
    ],
)
def test_anything_else_is_not_found(uri: str) -> None:
    with pytest.raises(NotFound) as refused:
        parse_uri(uri, max_key_length=128)
    assert refused.value.details["field"] == "uri"


def test_a_bad_key_in_a_uri_is_invalid_input_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_uri("handoff://sessions/has space", max_key_length=128)
    assert refused.value.details["field"] == "session_key"


def test_each_topic_maps_to_the_resources_it_changes() -> None:
    assert uris_of(Change.session("k")) == [
        "handoff://sessions/k",
        "handoff://sessions/k/context",
        "handoff://sessions/k/lifecycle",
    ]
    assert uris_of(Change(Topic.SESSIONS)) == ["handoff://sessions"]


@pytest.mark.anyio
async def test_services_announce_what_they_change() -> None:
    services = build_services()
    uow = services.uow
    await services.sessions.register("job", "lead", {}, None)
    assert uow.announced == [Change.sessions()]
    await services.context.append("job", "message", "hi", {}, None, None)
    assert uow.announced[-1] == Change.session("job")
    view = await services.handoffs.request("job", "codex", "context_transfer", {}, None)
    handoff_id = view.handoff.handoff_id
    assert set(uow.announced[-3:]) == {Change.session("job"), Change.handoff(handoff_id), Change.inbox("codex")}
    await services.handoffs.accept(handoff_id, "codex")
    assert {Change.handoff(handoff_id), Change.inbox("codex")} <= set(uow.announced[-3:])


@pytest.mark.anyio
async def test_a_write_refused_inside_its_transaction_announces_nothing() -> None:
    services = build_services()
    await services.sessions.register("job", "lead", {}, None)
    before = list(services.uow.announced)
    with pytest.raises(HandoffError):
        await services.context.append("job", "message", "hi", {}, "stranger", None)  # not a participant
    assert services.uow.rollbacks >= 1
    assert services.uow.announced == before
