"""The receiving side: B finds what was handed to it, accepts, declines or completes it; A sees the answer.

In-memory clients on both backends for the rules (who may answer, which answers fit which state,
what a declined or expired handoff gives back, races, pages), a real HTTP server and a real stdio
server for the request → list → accept path, and the completion handler.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, PromptReference, ResourceTemplateReference

from handoff.config import Settings
from handoff.container import Container
from handoff.mcp.server import build_server
from tests.conftest import structured, tool_error
from tests.e2e.servers import ServerDatabase, http_server, stdio_params
from tests.unit.fakes import FakeClock

pytestmark = pytest.mark.anyio

A, B, C = "agent-a", "agent-b", "agent-c"


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    return structured(await client.call_tool(tool, arguments))


async def refused(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    return tool_error(await client.call_tool(tool, arguments))


async def read_json(client: Client, uri: str) -> dict[str, Any]:
    result = await client.read_resource(uri)
    (content,) = result.contents
    assert content.mime_type == "application/json"
    return dict(json.loads(content.text))  # type: ignore[union-attr]


async def hand_off(client: Client, key: str, target: str = B, handoff_type: str = "full_handoff") -> str:
    """Register `key` as A (if new), write one entry, hand it to `target`; the handoff id."""
    existing = await client.call_tool("get_session", {"session_key": key})
    if existing.is_error:
        await call(client, "register_session", session_key=key, source_agent=A)
        await call(client, "update_context", session_key=key, context_type="message", content=f"work on {key}")
    handoff = await call(client, "request_handoff", session_key=key, target_agent=target, handoff_type=handoff_type)
    assert handoff["handoff"]["status"] == "pending"
    return str(handoff["handoff"]["handoff_id"])


async def owner_and_roles(client: Client, key: str) -> tuple[str, dict[str, str]]:
    session = (await call(client, "get_session", session_key=key))["session"]
    return session["owner_agent"], {p["agent"]: p["role"] for p in session["participants"]}


async def write_as(client: Client, key: str, agent: str) -> Any:
    arguments = {"session_key": key, "agent": agent, "context_type": "message", "content": f"{agent} writes"}
    return await client.call_tool("update_context", arguments)


async def events(client: Client, key: str) -> list[dict[str, Any]]:
    return list((await call(client, "get_lifecycle", session_key=key))["events"])


@asynccontextmanager
async def on_clock(settings: Settings, clock: FakeClock) -> AsyncIterator[tuple[Container, Client]]:
    async with Container.build(settings, clock=clock) as container, Client(build_server(container)) as client:
        yield container, client


# ---------------------------------------------------------------------------- the inbox ---


async def test_b_finds_its_handoff_without_an_id_accepts_it_and_a_sees_accepted(container: Container) -> None:
    server = build_server(container)
    with anyio.fail_after(60):
        async with Client(server) as a, Client(server) as b:
            handoff_id = await hand_off(a, "inbox-1")
            await hand_off(a, "not-for-b", target=C)

            listed = await call(b, "list_handoffs", target_agent=B)
            assert [h["handoff_id"] for h in listed["handoffs"]] == [handoff_id]
            item = listed["handoffs"][0]
            assert item["status"] == "pending" and item["source_agent"] == A and item["session_key"] == "inbox-1"
            assert item["uri"] == f"handoff://handoffs/{handoff_id}" and item["accept_before"] is not None
            assert "brief" not in item  # listings stay small: the brief is one get_handoff away
            assert listed["next_cursor"] is None

            inbox = await read_json(b, f"handoff://agents/{B}/inbox")
            assert inbox["agent"] == B
            assert [h["handoff_id"] for h in inbox["handoffs"]] == [handoff_id]
            assert inbox["next_cursor"] is None and inbox["next_uri"] is None

            accepted = (await call(b, "accept_handoff", handoff_id=handoff_id, agent=B))["handoff"]
            assert accepted["status"] == "accepted" and accepted["accepted_by"] == B
            assert accepted["brief"] and "complete_handoff" in accepted["instructions"]
            assert accepted["accept_before"] is None

            seen = (await call(a, "get_handoff", handoff_id=handoff_id))["handoff"]
            assert (seen["status"], seen["accepted_by"], seen["accepted_at"]) == (
                "accepted",
                B,
                accepted["accepted_at"],
            )
            assert (await read_json(a, f"handoff://handoffs/{handoff_id}"))["status"] == "accepted"
            mine = await call(a, "list_handoffs", source_agent=A, status="accepted")
            assert [h["handoff_id"] for h in mine["handoffs"]] == [handoff_id]
            assert (await call(b, "list_handoffs", target_agent=B, status="pending"))["handoffs"] == []
            assert (await read_json(b, f"handoff://agents/{B}/inbox"))["handoffs"] == []

            accept_event = (await events(a, "inbox-1"))[-1]
            assert (accept_event["reason"], accept_event["actor"]) == ("handoff accepted", B)
            assert accept_event["details"]["handoff_id"] == handoff_id
            assert (accept_event["details"]["from_status"], accept_event["details"]["to_status"]) == (
                "pending",
                "accepted",
            )


async def test_wrong_answers_get_clear_errors_and_change_nothing(client: Client) -> None:
    with anyio.fail_after(60):
        handoff_id = await hand_off(client, "errors")

        by_other = await refused(client, "accept_handoff", handoff_id=handoff_id, agent=C)
        assert by_other["code"] == "forbidden"
        assert B in by_other["message"] and by_other["details"]["target_agent"] == B
        assert (await refused(client, "decline_handoff", handoff_id=handoff_id, agent=A, reason="no"))[
            "code"
        ] == "forbidden"

        no_reason = await refused(client, "decline_handoff", handoff_id=handoff_id, agent=B)
        assert no_reason["code"] == "invalid_input" and no_reason["details"]["field"] == "reason"
        blank = await refused(client, "decline_handoff", handoff_id=handoff_id, agent=B, reason="  \n ")
        assert blank["code"] == "invalid_input" and blank["details"]["field"] == "reason"

        early = await refused(client, "complete_handoff", handoff_id=handoff_id, agent=B)
        assert early["code"] == "invalid_state" and early["details"]["status"] == "pending"
        assert "accept it first" in early["message"]

        assert (await call(client, "get_handoff", handoff_id=handoff_id))["handoff"]["status"] == "pending"
        await call(client, "accept_handoff", handoff_id=handoff_id, agent=B)

        again = await refused(client, "accept_handoff", handoff_id=handoff_id, agent=B)
        assert again["code"] == "invalid_state" and again["details"]["status"] == "accepted"
        assert "already accepted" in again["message"]
        late_decline = await refused(client, "decline_handoff", handoff_id=handoff_id, agent=B, reason="changed mind")
        assert late_decline["code"] == "invalid_state" and late_decline["details"]["status"] == "accepted"

        assert (await refused(client, "accept_handoff", handoff_id="0" * 32, agent=B))["code"] == "not_found"
        assert (await refused(client, "accept_handoff", handoff_id="../x", agent=B))["code"] == "invalid_input"
        assert (await refused(client, "list_handoffs", status="lost"))["details"]["field"] == "status"
        assert (await refused(client, "list_handoffs", cursor="bm90LW91cnM"))["details"]["field"] == "cursor"
        assert (await refused(client, "list_handoffs", session_key="no-such"))["code"] == "not_found"

        answers = [e for e in await events(client, "errors") if e["reason"].startswith("handoff ")]
        assert [e["reason"] for e in answers] == ["handoff accepted"]


async def test_complete_records_the_summary_and_leaves_the_session_alone(client: Client) -> None:
    with anyio.fail_after(60):
        handoff_id = await hand_off(client, "done", handoff_type="collaboration")
        await call(client, "accept_handoff", handoff_id=handoff_id, agent=B)
        done = (await call(client, "complete_handoff", handoff_id=handoff_id, agent=B, summary=" Fixed it. "))[
            "handoff"
        ]
        assert (done["status"], done["completion_summary"]) == ("completed", "Fixed it.")
        assert done["completed_at"] is not None and done["accepted_by"] == B
        session = (await call(client, "get_session", session_key="done"))["session"]
        assert session["status"] == "active"
        again = await refused(client, "complete_handoff", handoff_id=handoff_id, agent=B)
        assert again["details"]["status"] == "completed" and "already completed" in again["message"]
        last = (await events(client, "done"))[-1]
        assert (last["reason"], last["actor"], last["details"]["summary"]) == ("handoff completed", B, "Fixed it.")


# ------------------------------------------------------------------ what a decline gives back ---


async def test_a_declined_full_handoff_gives_the_session_back_to_its_previous_owner(client: Client) -> None:
    with anyio.fail_after(60):
        handoff_id = await hand_off(client, "decline-full")
        # While it is pending B owns the session and may write; A may only read.
        assert not (await write_as(client, "decline-full", B)).is_error
        assert (await write_as(client, "decline-full", A)).is_error

        declined = await call(
            client, "decline_handoff", handoff_id=handoff_id, agent=B, reason="Not my area: needs the DB team."
        )
        assert declined["owner_agent"] == A
        assert declined["handoff"]["status"] == "declined"
        assert declined["handoff"]["decline_reason"] == "Not my area: needs the DB team."
        assert await owner_and_roles(client, "decline-full") == (A, {A: "owner", B: "reader"})
        assert not (await write_as(client, "decline-full", A)).is_error
        assert tool_error(await write_as(client, "decline-full", B))["code"] == "forbidden"

        seen = (await call(client, "get_handoff", handoff_id=handoff_id))["handoff"]
        assert seen["status"] == "declined" and seen["declined_at"] is not None
        tail = (await events(client, "decline-full"))[-2:]
        assert [(e["reason"], e["actor"]) for e in tail] == [
            ("handoff declined", B),
            ("ownership returned: handoff declined", B),
        ]
        assert tail[0]["details"]["reason"] == "Not my area: needs the DB team."
        assert (tail[1]["details"]["from_owner"], tail[1]["details"]["to_owner"]) == (B, A)


async def test_a_declined_full_handoff_leaves_a_session_that_was_handed_on(client: Client) -> None:
    with anyio.fail_after(60):
        first = await call(client, "register_session", session_key="handed-on", source_agent=A)
        assert first["session"]["owner_agent"] == A
        a_to_b = await hand_off(client, "handed-on")
        b_to_c = (
            await call(client, "request_handoff", session_key="handed-on", target_agent=C, handoff_type="full_handoff")
        )["handoff"]["handoff_id"]
        declined = await call(client, "decline_handoff", handoff_id=a_to_b, agent=B, reason="passed it to C")
        assert declined["owner_agent"] == C  # the session moved on: it stays with C
        assert (await owner_and_roles(client, "handed-on"))[0] == C
        # C declining gives it back to B, C's previous owner.
        assert (await call(client, "decline_handoff", handoff_id=b_to_c, agent=C, reason="no"))["owner_agent"] == B


async def test_a_declined_collaboration_ends_write_access_unless_it_was_there_before(client: Client) -> None:
    with anyio.fail_after(60):
        first = await hand_off(client, "collab", handoff_type="collaboration")
        await call(client, "decline_handoff", handoff_id=first, agent=B, reason="busy")
        assert (await owner_and_roles(client, "collab"))[1][B] == "reader"

        second = await hand_off(client, "collab", handoff_type="collaboration")
        await call(client, "accept_handoff", handoff_id=second, agent=B)
        third = await hand_off(client, "collab", handoff_type="collaboration")  # B is a collaborator already
        await call(client, "decline_handoff", handoff_id=third, agent=B, reason="already on it")
        assert (await owner_and_roles(client, "collab"))[1][B] == "collaborator"
        await call(client, "update_context", session_key="collab", agent=B, context_type="message", content="still in")


# ------------------------------------------------------------------------------- expiry ---


async def test_the_expiry_job_expires_unanswered_handoffs_and_gives_back_what_they_granted(settings: Settings) -> None:
    settings.lifecycle.handoff_accept_seconds = 3600
    clock = FakeClock()
    with anyio.fail_after(60):
        async with on_clock(settings, clock) as (container, client):
            stale = await hand_off(client, "stale")
            answered = await hand_off(client, "answered")
            await call(client, "accept_handoff", handoff_id=answered, agent=B)
            deadline = (await call(client, "get_handoff", handoff_id=stale))["handoff"]["accept_before"]
            assert deadline == (clock.now() + timedelta(seconds=3600)).isoformat().replace("+00:00", "Z")
            clock.advance(1800)
            fresh = await hand_off(client, "fresh", handoff_type="context_transfer")
            clock.advance(1801)  # `stale` is past its hour; `fresh` is not

            ran = await container.lifecycle.run("expire_handoffs")
            assert (ran.examined, ran.changed, ran.errors) == (1, 1, 0)
            assert ran.details["expired"] == [stale]
            assert (await container.lifecycle.run("expire_handoffs")).changed == 0  # nothing left to do

            expired = (await call(client, "get_handoff", handoff_id=stale))["handoff"]
            assert expired["status"] == "expired" and expired["expired_at"] is not None
            assert expired["accept_before"] is None
            assert (await call(client, "get_handoff", handoff_id=fresh))["handoff"]["status"] == "pending"
            assert (await call(client, "get_handoff", handoff_id=answered))["handoff"]["status"] == "accepted"
            assert await owner_and_roles(client, "stale") == (A, {A: "owner", B: "reader"})
            assert (await owner_and_roles(client, "answered"))[0] == B
            tail = (await events(client, "stale"))[-2:]
            assert [(e["reason"], e["actor"]) for e in tail] == [
                ("handoff expired", "job:expire_handoffs"),
                ("ownership returned: handoff expired", "job:expire_handoffs"),
            ]
            late = await refused(client, "accept_handoff", handoff_id=stale, agent=B)
            assert late["code"] == "invalid_state" and late["details"]["status"] == "expired"
            runs = await container.lifecycle.recent_runs("expire_handoffs")
            assert [r["changed"] for r in runs][:2] == [0, 1]


async def test_an_answer_that_comes_too_late_expires_the_handoff_without_waiting_for_the_job(
    settings: Settings,
) -> None:
    settings.lifecycle.handoff_accept_seconds = 60
    clock = FakeClock()
    with anyio.fail_after(60):
        async with on_clock(settings, clock) as (_, client):
            handoff_id = await hand_off(client, "too-late")
            clock.advance(61)
            late = await refused(client, "accept_handoff", handoff_id=handoff_id, agent=B)
            assert late["code"] == "invalid_state" and late["details"]["status"] == "expired"
            assert "was not accepted by" in late["message"]
            assert (await call(client, "get_handoff", handoff_id=handoff_id))["handoff"]["status"] == "expired"
            assert (await owner_and_roles(client, "too-late"))[0] == A
            assert (await events(client, "too-late"))[-2]["actor"] == "system"


# ------------------------------------------------------------------------------ races ---


@pytest.mark.parametrize("rival", ["accept_handoff", "decline_handoff"])
async def test_two_replicas_answering_at_once_exactly_one_wins(settings: Settings, rival: str) -> None:
    """Two containers on one database (two replicas); both answer each handoff at the same moment."""
    rounds = 6
    with anyio.fail_after(120):
        async with (
            Container.build(settings) as one,
            Container.build(settings) as two,
            Client(build_server(one)) as first,
            Client(build_server(two)) as second,
        ):
            ids = [await hand_off(first, f"race-{n}") for n in range(rounds)]
            for handoff_id in ids:
                results: list[Any] = []

                async def answer(client: Client, tool: str, handoff_id: str, results: list[Any]) -> None:
                    arguments = {"handoff_id": handoff_id, "agent": B}
                    if tool == "decline_handoff":
                        arguments["reason"] = "racing"
                    results.append(await client.call_tool(tool, arguments))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(answer, first, "accept_handoff", handoff_id, results)
                    tg.start_soon(answer, second, rival, handoff_id, results)
                outcomes = sorted(results, key=lambda r: bool(r.is_error))
                winner, loser = outcomes
                assert not winner.is_error and loser.is_error, results
                error = tool_error(loser)
                final = (await call(first, "get_handoff", handoff_id=handoff_id))["handoff"]
                assert error["code"] == "invalid_state" and error["details"]["status"] == final["status"]
                assert final["status"] in {"accepted", "declined"}
                answers = [e for e in await events(first, final["session_key"]) if e["reason"].startswith("handoff ")]
                assert len(answers) == 1, answers  # the loser left no trace


async def test_a_replica_that_cached_a_handoff_sees_an_answer_given_through_another(settings: Settings) -> None:
    """Each container has its own read cache: what a handoff was made with may come from it, where it stands never."""
    with anyio.fail_after(60):
        async with (
            Container.build(settings) as one,
            Container.build(settings) as two,
            Client(build_server(one)) as first,
            Client(build_server(two)) as second,
        ):
            handoff_id = await hand_off(first, "cached")
            for _ in range(2):  # read twice: the second read is served from replica one's cache
                assert (await call(first, "get_handoff", handoff_id=handoff_id))["handoff"]["status"] == "pending"
            await call(second, "accept_handoff", handoff_id=handoff_id, agent=B)
            seen = (await call(first, "get_handoff", handoff_id=handoff_id))["handoff"]
            assert (seen["status"], seen["accepted_by"]) == ("accepted", B)
            assert (await read_json(first, f"handoff://handoffs/{handoff_id}"))["status"] == "accepted"


# -------------------------------------------------------------------------------- pages ---


async def test_pages_are_newest_first_and_cover_every_handoff_once_even_at_one_instant(settings: Settings) -> None:
    clock = FakeClock()  # never advanced: every handoff has the same created_at, ties broken by id
    with anyio.fail_after(120):
        async with on_clock(settings, clock) as (_, client):
            await call(client, "register_session", session_key="many", source_agent=A)
            made = [await hand_off(client, "many", handoff_type="context_transfer") for _ in range(53)]
            other = await hand_off(client, "other-session", target=C)

            seen: list[str] = []
            cursor = None
            for _ in range(30):
                page = await call(client, "list_handoffs", target_agent=B, limit=7, cursor=cursor)
                assert len(page["handoffs"]) == 7 or page["next_cursor"] is None
                seen += [h["handoff_id"] for h in page["handoffs"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == sorted(made, reverse=True)

            by_resource: list[str] = []
            uri: str | None = f"handoff://agents/{B}/inbox"
            pages = 0
            while uri is not None:
                body = await read_json(client, uri)
                by_resource += [h["handoff_id"] for h in body["handoffs"]]
                uri, pages = body["next_uri"], pages + 1
                assert (body["next_cursor"] is None) == (uri is None)
            assert (by_resource, pages) == (seen, 2)

            everything = await call(client, "list_handoffs", limit=500)
            assert len(everything["handoffs"]) == 54 and everything["next_cursor"] is None
            of_session = await call(client, "list_handoffs", session_key="other-session")
            assert [h["handoff_id"] for h in of_session["handoffs"]] == [other]
            assert (await call(client, "list_handoffs", source_agent=C))["handoffs"] == []


async def test_newest_first_follows_time(settings: Settings) -> None:
    clock = FakeClock()
    with anyio.fail_after(60):
        async with on_clock(settings, clock) as (_, client):
            made = []
            for n in range(4):
                made.append(await hand_off(client, f"t-{n}"))
                clock.advance(1)
            page = await call(client, "list_handoffs", target_agent=B, limit=3)
            rest = await call(client, "list_handoffs", target_agent=B, limit=3, cursor=page["next_cursor"])
            assert [h["handoff_id"] for h in page["handoffs"] + rest["handoffs"]] == made[::-1]


# ------------------------------------------------------------------------------- prompt ---


async def test_resume_handoff_accepts_for_the_target_only(client: Client) -> None:
    with anyio.fail_after(60):
        handoff_id = await hand_off(client, "resume")
        shown = await client.get_prompt("resume_handoff", {"handoff_id": handoff_id})
        assert "is pending: accept it with accept_handoff" in shown.messages[0].content.text  # type: ignore[union-attr]
        assert (await call(client, "get_handoff", handoff_id=handoff_id))["handoff"]["status"] == "pending"

        with pytest.raises(MCPError) as raised:
            await client.get_prompt("resume_handoff", {"handoff_id": handoff_id, "agent": C})
        assert raised.value.error.code == INVALID_PARAMS and raised.value.error.data["code"] == "forbidden"

        resumed = await client.get_prompt("resume_handoff", {"handoff_id": handoff_id, "agent": B})
        text = resumed.messages[0].content.text  # type: ignore[union-attr]
        assert "You have accepted this handoff" in text and "# Handoff brief" in text
        assert (await call(client, "get_handoff", handoff_id=handoff_id))["handoff"]["accepted_by"] == B
        again = await client.get_prompt("resume_handoff", {"handoff_id": handoff_id, "agent": B})
        assert "is accepted" in again.messages[0].content.text  # type: ignore[union-attr]


# --------------------------------------------------------------------------- completion ---


async def test_completion_offers_keys_ids_and_agents_by_exact_prefix(client: Client) -> None:
    with anyio.fail_after(60):
        assert client.server_capabilities is not None and client.server_capabilities.completions is not None
        for key in ("alpha", "alpha-2", "Alpine", "a_b", "axb", "beta"):
            await call(client, "register_session", session_key=key, source_agent=f"{key}-owner")
        for n in range(102):
            await call(client, "register_session", session_key=f"bulk-{n:03}", source_agent=A)

        prepare = PromptReference(name="prepare_handoff")
        keys = (await client.complete(prepare, {"name": "session_key", "value": "al"})).completion
        assert (keys.values, keys.has_more) == (["alpha", "alpha-2"], False)  # case counts
        assert (await client.complete(prepare, {"name": "session_key", "value": "a_"})).completion.values == ["a_b"]
        bulk = (await client.complete(prepare, {"name": "session_key", "value": "bulk-"})).completion
        assert len(bulk.values) == 100 and bulk.has_more is True and bulk.values[0] == "bulk-000"
        context = ResourceTemplateReference(uri="handoff://sessions/{session_key}/context{?cursor,limit}")
        assert (await client.complete(context, {"name": "session_key", "value": "bet"})).completion.values == ["beta"]

        for_b = await hand_off(client, "alpha", target=B)
        for_c = await hand_off(client, "beta", target=C)
        resume = PromptReference(name="resume_handoff")
        ids = (await client.complete(resume, {"name": "handoff_id", "value": ""})).completion.values
        assert set(ids) == {for_b, for_c}
        mine = await client.complete(resume, {"name": "handoff_id", "value": ""}, context_arguments={"agent": B})
        assert mine.completion.values == [for_b]
        assert (await client.complete(resume, {"name": "handoff_id", "value": for_c[:6]})).completion.values == [for_c]

        inbox = ResourceTemplateReference(uri="handoff://agents/{agent}/inbox{?cursor}")
        agents = (await client.complete(inbox, {"name": "agent", "value": "alp"})).completion.values
        assert agents == ["alpha-2-owner", "alpha-owner"]
        assert (await client.complete(resume, {"name": "agent", "value": "agent-"})).completion.values == [A, B, C]
        nothing = (await client.complete(inbox, {"name": "cursor", "value": ""})).completion
        assert nothing.values == []


# --------------------------------------------------------------------- real transports ---


async def request_list_accept(a: Client, b: Client, key: str) -> None:
    handoff_id = await hand_off(a, key)
    inbox = await call(b, "list_handoffs", target_agent=B, status="pending")
    assert handoff_id in [h["handoff_id"] for h in inbox["handoffs"]]
    assert handoff_id in [h["handoff_id"] for h in (await read_json(b, f"handoff://agents/{B}/inbox"))["handoffs"]]
    assert (await call(b, "accept_handoff", handoff_id=handoff_id, agent=B))["handoff"]["status"] == "accepted"
    assert (await refused(b, "accept_handoff", handoff_id=handoff_id, agent=B))["code"] == "invalid_state"
    seen = (await call(a, "get_handoff", handoff_id=handoff_id))["handoff"]
    assert (seen["status"], seen["accepted_by"]) == ("accepted", B)


@pytest.mark.slow
async def test_request_list_accept_over_http(server_db: ServerDatabase) -> None:
    with http_server(server_db) as server, anyio.fail_after(60):
        async with Client(server.url) as a, Client(server.url) as b:
            await request_list_accept(a, b, "over-http")


@pytest.mark.slow
async def test_request_list_accept_over_stdio(server_db: ServerDatabase) -> None:
    with anyio.fail_after(60):
        async with Client(stdio_params(server_db)) as a, Client(stdio_params(server_db)) as b:
            await request_list_accept(a, b, "over-stdio")
            ids = await b.complete(PromptReference(name="resume_handoff"), {"name": "handoff_id", "value": ""})
            assert len(ids.completion.values) == 1
