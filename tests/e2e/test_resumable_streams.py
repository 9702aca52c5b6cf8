"""Resumable streams on the real HTTP server: a client reads part of a tool call's SSE answer, drops
the connection, reconnects with Last-Event-ID and gets the rest; nobody else can replay it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from tests.e2e.servers import RunningServer, ServerDatabase, http_server
from tests.e2e.sse import RawSession, SseEvent, events
from tests.e2e.test_auth import TOKENS, create_token
from tests.e2e.test_replicas import postgres_schema as postgres_schema
from tests.e2e.test_replicas import two_replicas

pytestmark = pytest.mark.anyio

FILES = 24  # analyze_codebase reports progress from 10 files on
RETRY_MS = 50


@pytest.fixture
def source_tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    for i in range(FILES):
        (root / f"module_{i:02}.py").write_text(f"def f{i}(x):\n    return x + {i}\n")
    return root


@asynccontextmanager
async def raw_session(server: RunningServer, token: str | None = None) -> AsyncIterator[RawSession]:
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=30) as http:
        session = RawSession(http, server.url, headers)
        await session.initialize()
        yield session


def _progress(event: SseEvent) -> float | None:
    message = event.message()
    if message is not None and message.get("method") == "notifications/progress":
        return float(message["params"]["progress"])
    return None


async def _analyze_and_drop(session: RawSession, root: Path, *, keep: int) -> tuple[int, list[SseEvent]]:
    """Call analyze_codebase with a progress token, read `keep` events after the priming one, drop."""
    registered = await session.call(
        "tools/call", {"name": "register_session", "arguments": {"session_key": "s", "source_agent": "alice"}}
    )
    assert not registered["result"].get("isError"), registered
    request_id, body = session.request(
        "tools/call",
        {
            "name": "analyze_codebase",
            "arguments": {"session_key": "s", "file_paths": [str(root)], "analysis_type": "syntax"},
            "_meta": {"progressToken": "p"},
        },
    )
    seen: list[SseEvent] = []
    async with session.post(body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event in events(response):
            seen.append(event)
            if len(seen) > keep:
                break  # leaving the block closes the connection mid-answer
    return request_id, seen


async def _resume_until_answer(session: RawSession, request_id: int, last_event_id: str) -> list[SseEvent]:
    """Reconnect with Last-Event-ID (again after each `retry`, as a client does) until the answer."""
    replayed: list[SseEvent] = []
    while True:
        async with session.resume(last_event_id) as response:
            assert response.status_code == 200, response.status_code
            async for event in events(response):
                if event.event_id:
                    last_event_id = event.event_id
                if event.data:
                    replayed.append(event)
                    if (event.message() or {}).get("id") == request_id:
                        return replayed
        await anyio.sleep(RETRY_MS / 1000)  # the server's retry hint: its answer is not stored yet


async def test_a_dropped_tool_call_stream_resumes_after_the_last_event_seen(
    server_db: ServerDatabase, source_tree: Path
) -> None:
    env = {"HANDOFF_ANALYSIS_ROOTS": str(source_tree), "HANDOFF_STREAMS__RETRY_MS": str(RETRY_MS)}
    with http_server(server_db, **env) as server:
        async with raw_session(server) as session:
            with anyio.fail_after(60):
                request_id, seen = await _analyze_and_drop(session, source_tree, keep=3)
                priming = seen[0]
                assert (priming.data, priming.retry) == ("", RETRY_MS)  # the SSE retry hint
                before = [p for p in map(_progress, seen) if p is not None]
                assert before, [e.data for e in seen]
                last_id = seen[-1].event_id
                assert last_id is not None

                replayed = await _resume_until_answer(session, request_id, last_id)

    after = [p for p in map(_progress, replayed) if p is not None]
    # Nothing seen twice, nothing lost: the progress continues where the dropped stream stopped.
    assert before + after == [float(n) for n in range(1, FILES + 1)]
    answer = replayed[-1].message()
    assert answer is not None
    assert not answer["result"].get("isError"), answer
    result = answer["result"]["structuredContent"]
    assert len(result["analysis"]["files"]) == FILES
    assert result["entry"]["context_type"] == "file"


async def test_another_session_or_a_forged_id_replays_nothing(server_db: ServerDatabase, source_tree: Path) -> None:
    env = {"HANDOFF_ANALYSIS_ROOTS": str(source_tree), "HANDOFF_STREAMS__RETRY_MS": str(RETRY_MS)}
    with http_server(server_db, **env) as server:
        async with raw_session(server) as owner, raw_session(server) as other:
            with anyio.fail_after(60):
                request_id, seen = await _analyze_and_drop(owner, source_tree, keep=1)
                first_id = seen[0].event_id
                assert first_id is not None
                stream_key = first_id.split(".")[0]
                forged = [
                    first_id,  # the real id, from another session
                    f"{stream_key}.1",  # the real stream, an earlier position
                    "A" * 24 + ".1",  # well-formed, never minted
                    "1",  # the SDK's example store's shape
                    "not an id at all",
                ]
                for last_event_id in forged:
                    async with other.resume(last_event_id) as response:
                        assert response.status_code == 200
                        got = [e async for e in events(response)]
                    assert not [e for e in got if e.data], (last_event_id, got)
                # The owner still can.
                replayed = await _resume_until_answer(owner, request_id, first_id)
                assert (replayed[-1].message() or {}).get("id") == request_id


async def test_with_tokens_only_the_agent_that_opened_the_session_replays_it(
    server_db: ServerDatabase, source_tree: Path
) -> None:
    alice = create_token(server_db, "alice")["token"]
    mallory = create_token(server_db, "mallory")["token"]
    env = {"HANDOFF_ANALYSIS_ROOTS": str(source_tree), "HANDOFF_STREAMS__RETRY_MS": str(RETRY_MS), **TOKENS}
    with http_server(server_db, **env) as server:
        async with raw_session(server, alice) as session:
            with anyio.fail_after(60):
                request_id, seen = await _analyze_and_drop(session, source_tree, keep=1)
                last_id = seen[-1].event_id
                assert last_id is not None
                # Mallory has learnt the session id and the event id: the session is the same, the agent is not.
                stolen = RawSession(
                    session.http, session.url, {"authorization": f"Bearer {mallory}"}, session.session_id
                )
                async with stolen.resume(last_id) as response:
                    got = [e async for e in events(response)]
                assert not [e for e in got if e.data], got
                replayed = await _resume_until_answer(session, request_id, last_id)
                assert (replayed[-1].message() or {}).get("id") == request_id


async def test_another_replica_replays_the_stream_from_the_database(
    postgres_schema: tuple[str, str], source_tree: Path
) -> None:
    """The session lives on replica a (the SDK's model); its dropped stream resumes on replica b."""
    url, schema = postgres_schema
    env = {
        "HANDOFF_ANALYSIS_ROOTS": str(source_tree),
        "HANDOFF_DB__SCHEMA_NAME": schema,
        "HANDOFF_STREAMS__RETRY_MS": str(RETRY_MS),
    }
    with two_replicas(url, **env) as (a, b):
        async with raw_session(a) as session:
            with anyio.fail_after(60):
                request_id, seen = await _analyze_and_drop(session, source_tree, keep=3)
                before = [p for p in map(_progress, seen) if p is not None]
                last_id = seen[-1].event_id
                assert last_id is not None
                on_b = RawSession(session.http, b.url, {}, session.session_id)

                replayed = await _resume_until_answer(on_b, request_id, last_id)

                after = [p for p in map(_progress, replayed) if p is not None]
                assert before + after == [float(n) for n in range(1, FILES + 1)]
                answer = replayed[-1].message() or {}
                assert len(answer["result"]["structuredContent"]["analysis"]["files"]) == FILES
                # Only the reconnect: the session's other requests still need replica a.
                refused = await session.http.post(
                    b.url,
                    json=session.request("ping", {})[1],
                    headers=on_b._headers("application/json, text/event-stream"),
                )
                assert refused.status_code == 404
                # And an id that is not this session's is refused there as it would be anywhere.
                stranger = RawSession(session.http, b.url, {}, "f" * 32)
                for session_on_b, event_id in ((stranger, last_id), (on_b, "A" * 24 + ".1")):
                    async with session_on_b.resume(event_id) as response:
                        assert response.status_code == 404


async def test_a_restarted_server_replays_what_the_stream_stored(server_db: ServerDatabase, source_tree: Path) -> None:
    env = {"HANDOFF_ANALYSIS_ROOTS": str(source_tree), "HANDOFF_STREAMS__RETRY_MS": str(RETRY_MS)}
    with http_server(server_db, **env) as first:
        async with raw_session(first) as session:
            with anyio.fail_after(60):
                request_id, seen = await _analyze_and_drop(session, source_tree, keep=1)
                replayed = await _resume_until_answer(session, request_id, seen[0].event_id or "")
    with http_server(server_db, **env) as second:
        async with httpx.AsyncClient(timeout=30) as http:
            again = RawSession(http, second.url, {}, session.session_id)
            with anyio.fail_after(60):
                after_restart = await _resume_until_answer(again, request_id, seen[0].event_id or "")
    assert [e.data for e in after_restart] == [e.data for e in replayed]
    assert (after_restart[-1].message() or {}).get("id") == request_id
