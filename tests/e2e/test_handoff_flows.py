"""The A→B handoff, end to end, for every handoff type over every transport.

Agent A and agent B are separate client connections: the SDK's in-memory client, a real
`handoff serve --transport stdio` subprocess, a real HTTP server — and A over HTTP with B over stdio
on the same database. Subprocess variants run all three handoff types per server start.

Every flow runs on SQLite and on PostgreSQL; the transport matrix is SQLite-only except for the mixed
HTTP+stdio pair, since the transports do not depend on the backend.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from handoff.container import Container
from handoff.mcp.server import build_server
from tests.conftest import BACKENDS, require_backend, server_database, settings_for, structured, tool_error
from tests.e2e.servers import ServerDatabase, http_server, stdio_params

pytestmark = pytest.mark.anyio

HANDOFF_TYPES = ["context_transfer", "full_handoff", "collaboration"]
A, B = "agent-a", "agent-b"
CONTEXT_TYPES = ["message", "file", "tool_call", "system"]
PAGINATION_ENTRIES = 1003  # not a multiple of any page size used below


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    # Module scope so the 1,000-entry database is seeded once for the whole module.
    return "asyncio"


# --------------------------------------------------------------------------------- helpers ---


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    return structured(await client.call_tool(tool, args))


async def read_json(client: Client, uri: str) -> dict[str, Any]:
    result = await client.read_resource(uri)
    assert len(result.contents) == 1, result
    content = result.contents[0]
    assert content.mime_type == "application/json", (uri, content.mime_type)
    return dict(json.loads(content.text))  # type: ignore[union-attr]


async def all_pages(client: Client, key: str, *, limit: int, context_types: list[str] | None = None) -> list[dict]:
    """Every entry via get_context, following next_cursor; asserts each page is full but the last."""
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10_000):
        args: dict[str, Any] = {"session_key": key, "limit": limit}
        if cursor is not None:
            args["cursor"] = cursor
        if context_types is not None:
            args["context_types"] = context_types
        page = await call(client, "get_context", args)
        cursor = page["next_cursor"]
        if cursor is not None:
            assert len(page["entries"]) == limit, "only the last page may be short"
        else:
            assert len(page["entries"]) <= limit
        entries.extend(page["entries"])
        if cursor is None:
            return entries
    raise AssertionError("get_context never returned next_cursor=null")


async def all_resource_pages(client: Client, uri: str) -> tuple[list[dict], int]:
    """Every entry via the context resource, following next_uri; also returns the page count."""
    entries: list[dict[str, Any]] = []
    pages = 0
    next_uri: str | None = uri
    while next_uri is not None:
        pages += 1
        assert pages < 10_000, "the context resource never stopped giving next_uri"
        page = await read_json(client, next_uri)
        entries.extend(page["entries"])
        next_uri = page["next_uri"]
        assert (page["next_cursor"] is None) == (next_uri is None)
    return entries, pages


def sequences(entries: list[dict[str, Any]]) -> list[int]:
    return [e["sequence_number"] for e in entries]


def roles(session: dict[str, Any]) -> dict[str, str]:
    return {p["agent"]: p["role"] for p in session["participants"]}


# ------------------------------------------------------------------------------ connections ---


@asynccontextmanager
async def memory_pair(container: Container) -> AsyncIterator[tuple[Client, Client]]:
    """A and B as two in-memory connections to one server object."""
    server = build_server(container)
    async with Client(server) as a, Client(server) as b:
        yield a, b


@asynccontextmanager
async def subprocess_pair(
    db: ServerDatabase, a_transport: str, b_transport: str
) -> AsyncIterator[tuple[Client, Client]]:
    """A and B as two connections to real `handoff serve` subprocesses sharing one database."""
    async with AsyncExitStack() as stack:
        server = None
        if "http" in (a_transport, b_transport):
            server = stack.enter_context(http_server(db))

        async def connect(transport: str) -> Client:
            target = server.url if transport == "http" else stdio_params(db)  # type: ignore[union-attr]
            return await stack.enter_async_context(Client(target))

        # No cancel scope of our own in here: the clients' task groups must exit where they entered.
        a = await connect(a_transport)
        b = await connect(b_transport)
        yield a, b


# --------------------------------------------------------------------------------- the flow ---


def a_script(key: str) -> list[dict[str, Any]]:
    """What agent A records: all four entry types, with the markers the brief picks up."""
    return [
        {
            "context_type": "message",
            "content": f"[{key}] Make the SQLite storage crash-safe.",
            "metadata": {"role": "user"},
        },
        {
            "context_type": "message",
            "content": "Read the engine setup.\nDecision: use WAL\nTODO: write docs\nThat is the plan.",
            "metadata": {"role": "assistant"},
        },
        {
            "context_type": "file",
            "content": "PRAGMA journal_mode=WAL\nPRAGMA synchronous=FULL\n",
            "metadata": {"path": "src/handoff/storage/engine.py", "action": "edit"},
        },
        {
            "context_type": "tool_call",
            "content": "$ pytest -q\nFAILED tests/test_x.py::test_y - AssertionError: 1 != 2\n1 failed, 3 passed",
            "metadata": {"tool": "pytest", "status": "failed"},
        },
        {"context_type": "system", "content": "checkpoint: running on python 3.11", "metadata": {}},
        {
            "context_type": "message",
            "content": "Please fix the failing test before the release.",
            "metadata": {"role": "user"},
        },
    ]


async def a_records_and_hands_off(a: Client, key: str, handoff_type: str) -> tuple[list[dict], dict]:
    registered = await call(a, "register_session", {"session_key": key, "source_agent": A, "metadata": {"repo": "x"}})
    assert registered["session"]["owner_agent"] == A
    assert registered["session"]["status"] == "active"
    script = a_script(key)
    for number, item in enumerate(script, start=1):
        receipt = await call(a, "update_context", {"session_key": key, **item})
        assert receipt["entry"]["sequence_number"] == number
        assert receipt["entry"]["context_type"] == item["context_type"]
        assert receipt["entry"]["agent"] == A
    result = await call(
        a,
        "request_handoff",
        {
            "session_key": key,
            "target_agent": B,
            "handoff_type": handoff_type,
            "request_data": {"note": f"start with test_y ({handoff_type})"},
        },
    )
    return script, result["handoff"]


def check_brief(handoff: dict[str, Any], key: str, handoff_type: str) -> None:
    assert handoff["session_key"] == key
    assert handoff["handoff_type"] == handoff_type
    assert (handoff["source_agent"], handoff["target_agent"]) == (A, B)
    assert handoff["status"] == "pending"
    assert handoff["up_to_sequence"] == 6
    assert handoff["request_data"] == {"note": f"start with test_y ({handoff_type})"}
    brief = handoff["brief"]
    for must in (
        "use WAL",  # the decision
        "write docs",  # the open task
        "tests/test_x.py::test_y",  # the failing test
        "src/handoff/storage/engine.py",  # the touched file
        "fix the failing test before the release",  # the last request
        f"start with test_y ({handoff_type})",  # the note
    ):
        assert must in brief, f"{must!r} missing from the {handoff_type} brief:\n{brief}"
    assert 0 < handoff["brief_tokens"] <= handoff["token_budget"]
    assert f"handoff://handoffs/{handoff['handoff_id']}" in handoff["resources"]
    assert f"handoff://sessions/{key}/context" in handoff["resources"]
    assert f'get_context(session_key="{key}"' in handoff["instructions"]


async def b_reads_everything(b: Client, key: str, script: list[dict], handoff: dict[str, Any]) -> None:
    handoff_id = handoff["handoff_id"]
    via_resource = await read_json(b, f"handoff://handoffs/{handoff_id}")
    via_tool = (await call(b, "get_handoff", {"handoff_id": handoff_id}))["handoff"]
    assert via_tool == handoff, "get_handoff differs from the request_handoff result"
    assert via_resource == handoff, "handoff://handoffs/{id} differs from the request_handoff result"

    prompt = await b.get_prompt("resume_handoff", {"handoff_id": handoff_id})
    text = prompt.messages[0].content.text  # type: ignore[union-attr]
    assert handoff["brief"] in text
    assert handoff["instructions"] in text
    assert B in text

    expected = [{"sequence_number": n, "agent": A, **item} for n, item in enumerate(script, start=1)]

    def essentials(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: e[k] for k in ("sequence_number", "agent", "context_type", "content", "metadata")} for e in entries]

    assert essentials(await all_pages(b, key, limit=2)) == expected
    assert essentials(await all_pages(b, key, limit=100)) == expected
    paged, pages = await all_resource_pages(b, f"handoff://sessions/{key}/context?limit=4")
    assert (essentials(paged), pages) == (expected, 2)
    whole, pages = await all_resource_pages(b, f"handoff://sessions/{key}/context")
    assert (essentials(whole), pages) == (expected, 1)
    files = await all_pages(b, key, limit=100, context_types=["file"])
    assert essentials(files) == [e for e in expected if e["context_type"] == "file"]


async def check_write_rules(a: Client, b: Client, key: str, handoff_type: str) -> None:
    def note(agent: str) -> dict[str, Any]:
        return {"session_key": key, "context_type": "message", "content": f"{agent} was here", "agent": agent}

    b_may_write = handoff_type in ("full_handoff", "collaboration")
    a_may_write = handoff_type in ("context_transfer", "collaboration")
    written: list[tuple[str, int]] = []
    for client, agent, allowed in ((b, B, b_may_write), (a, A, a_may_write)):
        result = await client.call_tool("update_context", note(agent))
        if allowed:
            receipt = structured(result)["entry"]
            assert receipt["agent"] == agent
            written.append((agent, receipt["sequence_number"]))
        else:
            error = tool_error(result)
            assert error["code"] == "forbidden", (handoff_type, agent, error)
            assert agent in error["message"]

    # With two participants an append must say who writes: left out, it would be put down to the
    # owner whoever sent it (here A, the former owner after a full handoff). Nothing is appended.
    unnamed = await a.call_tool("update_context", {"session_key": key, "context_type": "system", "content": "tick"})
    refused = tool_error(unnamed)
    assert refused["code"] == "invalid_input" and refused["details"]["field"] == "agent", refused

    assert [seq for _, seq in written] == list(range(7, 7 + len(written))), "sequence numbers must stay gap-free"
    tail = (await call(b, "get_context", {"session_key": key, "cursor": None, "limit": 100}))["entries"][6:]
    assert [(e["agent"], e["sequence_number"]) for e in tail] == written


async def check_ownership_and_lifecycle(a: Client, b: Client, key: str, handoff_type: str) -> None:
    session = (await call(b, "get_session", {"session_key": key}))["session"]
    expected_roles = {
        "full_handoff": {A: "former_owner", B: "owner"},
        "collaboration": {A: "owner", B: "collaborator"},
        "context_transfer": {A: "owner", B: "reader"},
    }[handoff_type]
    assert roles(session) == expected_roles
    assert session["owner_agent"] == (B if handoff_type == "full_handoff" else A)
    assert session["source_agent"] == A
    assert session["status"] == "active"

    via_tool = await call(a, "get_lifecycle", {"session_key": key})
    via_resource = await read_json(b, f"handoff://sessions/{key}/lifecycle")
    assert via_tool == via_resource
    assert via_tool["session_key"] == key
    events = via_tool["events"]
    assert events[0]["to_status"] == "active" and events[0]["from_status"] is None
    handoff_events = events[1:]
    assert len(handoff_events) == 1, events
    event = handoff_events[0]
    assert event["actor"] == A
    assert event["details"]["handoff_type"] == handoff_type
    if handoff_type == "full_handoff":
        assert event["details"]["from_owner"] == A
        assert event["details"]["to_owner"] == B
        assert "ownership" in event["reason"]
    else:
        assert event["details"]["agent"] == B
        assert event["details"]["role"] == expected_roles[B]


async def full_flow(a: Client, b: Client, key: str, handoff_type: str) -> None:
    script, handoff = await a_records_and_hands_off(a, key, handoff_type)
    check_brief(handoff, key, handoff_type)
    await b_reads_everything(b, key, script, handoff)
    await check_write_rules(a, b, key, handoff_type)
    await check_ownership_and_lifecycle(a, b, key, handoff_type)


# ---------------------------------------------------------------------------------- flows ---


@pytest.mark.parametrize("handoff_type", HANDOFF_TYPES)
async def test_handoff_flow_in_memory(container: Container, handoff_type: str) -> None:
    with anyio.fail_after(60):
        async with memory_pair(container) as (a, b):
            await full_flow(a, b, f"mem-{handoff_type}", handoff_type)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "a_transport", "b_transport"),
    [
        ("sqlite", "stdio", "stdio"),
        ("sqlite", "http", "http"),
        ("sqlite", "http", "stdio"),
        ("postgres", "http", "stdio"),
    ],
    ids=["sqlite-stdio", "sqlite-http", "sqlite-a_http-b_stdio", "postgres-a_http-b_stdio"],
    indirect=["backend"],
)
async def test_handoff_flow_over_real_transports(server_db: ServerDatabase, a_transport: str, b_transport: str) -> None:
    db = server_db
    with anyio.fail_after(120):
        async with subprocess_pair(db, a_transport, b_transport) as (a, b):
            for handoff_type in HANDOFF_TYPES:
                await full_flow(a, b, f"{a_transport}-{b_transport}-{handoff_type}", handoff_type)


async def test_prompt_for_unknown_handoff_is_an_error_and_the_connection_survives(container: Container) -> None:
    with anyio.fail_after(30):
        async with memory_pair(container) as (_, b):
            with pytest.raises(MCPError, match="no handoff with id") as raised:
                await b.get_prompt("resume_handoff", {"handoff_id": "0" * 32})
            assert raised.value.error.code == INVALID_PARAMS
            assert raised.value.error.data["code"] == "not_found"
            assert (await call(b, "list_sessions", {}))["sessions"] == []


# -------------------------------------------------------------------------------- restart ---


async def snapshot(client: Client, key: str, handoff_id: str) -> dict[str, Any]:
    return {
        "session": await call(client, "get_session", {"session_key": key}),
        "entries": await all_pages(client, key, limit=7),
        "resource_entries": (await all_resource_pages(client, f"handoff://sessions/{key}/context?limit=5"))[0],
        "session_resource": await read_json(client, f"handoff://sessions/{key}"),
        "handoff": await call(client, "get_handoff", {"handoff_id": handoff_id}),
        "handoff_resource": await read_json(client, f"handoff://handoffs/{handoff_id}"),
        "lifecycle": await call(client, "get_lifecycle", {"session_key": key}),
        "sessions": await call(client, "list_sessions", {}),
    }


@pytest.mark.slow
async def test_restart_keeps_everything_acknowledged(server_db: ServerDatabase) -> None:
    db = server_db
    key = "survives-restart"
    receipts: list[dict[str, Any]] = []
    with http_server(db) as first:
        with anyio.fail_after(60):
            async with Client(first.url) as a:
                await call(a, "register_session", {"session_key": key, "source_agent": A, "metadata": {"k": [1]}})
                for n in range(20):
                    item = a_script(key)[n % 6]
                    content = f"{item['content']} #{n}" + ("é€😀" * n)
                    receipt = await call(a, "update_context", {"session_key": key, **item, "content": content})
                    receipts.append({**receipt["entry"], "content": content})
                handoff = (
                    await call(
                        a, "request_handoff", {"session_key": key, "target_agent": B, "handoff_type": "full_handoff"}
                    )
                )["handoff"]
                receipts.append(
                    {
                        **(
                            await call(
                                a,
                                "update_context",
                                {"session_key": key, "context_type": "message", "content": "B continues", "agent": B},
                            )
                        )["entry"],
                        "content": "B continues",
                    }
                )
                before = await snapshot(a, key, handoff["handoff_id"])
    assert first.process.returncode is not None, "the first server must be gone before the second starts"

    with http_server(db) as second:
        assert second.process.pid != first.process.pid
        with anyio.fail_after(60):
            async with Client(second.url) as b:
                after = await snapshot(b, key, handoff["handoff_id"])

    assert after == before
    assert [e["sequence_number"] for e in after["entries"]] == list(range(1, 22))
    for receipt, entry in zip(receipts, after["entries"], strict=True):
        assert entry["sequence_number"] == receipt["sequence_number"]
        assert entry["content"] == receipt["content"]
        assert hashlib.sha256(entry["content"].encode()).hexdigest() == receipt["content_sha256"]
        assert entry["agent"] == receipt["agent"]
    assert after["session"]["session"]["owner_agent"] == B
    assert after["handoff"]["handoff"]["brief"] == handoff["brief"]


# ----------------------------------------------------------------------------- pagination ---


@pytest.fixture(scope="module", params=BACKENDS)
def paging_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerDatabase]:
    with server_database(require_backend(request.param), tmp_path_factory.mktemp("paging")) as database:
        yield database


@pytest.fixture(scope="module")
async def seeded_db(paging_db: ServerDatabase) -> ServerDatabase:
    """One session of PAGINATION_ENTRIES entries, written through the services, on each backend."""
    db = paging_db
    async with Container.build(settings_for(db)) as container:
        await container.sessions.register("big", A, {}, None)
        for n in range(1, PAGINATION_ENTRIES + 1):
            kind = CONTEXT_TYPES[(n * 7) % 4]
            await container.context.append("big", kind, f"{kind} entry {n}", {"n": n}, None, None)
    return db


def expected_entries(types: list[str] | None = None) -> list[tuple[int, str, str]]:
    every = [
        (n, CONTEXT_TYPES[(n * 7) % 4], f"{CONTEXT_TYPES[(n * 7) % 4]} entry {n}")
        for n in range(1, PAGINATION_ENTRIES + 1)
    ]
    return [e for e in every if types is None or e[1] in types]


def shape(entries: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    out = []
    for e in entries:
        assert e["metadata"] == {"n": e["sequence_number"]}
        out.append((e["sequence_number"], e["context_type"], e["content"]))
    return out


async def check_pagination(client: Client) -> None:
    n = PAGINATION_ENTRIES
    assert shape(await all_pages(client, "big", limit=100)) == expected_entries()
    assert shape(await all_pages(client, "big", limit=37)) == expected_entries()
    assert sequences(await all_pages(client, "big", limit=500)) == list(range(1, n + 1))

    files = await all_pages(client, "big", limit=37, context_types=["file"])
    assert shape(files) == expected_entries(["file"])
    assert len(files) in (n // 4, n // 4 + 1)
    mixed = await all_pages(client, "big", limit=100, context_types=["message", "system"])
    assert shape(mixed) == expected_entries(["message", "system"])

    by_resource, pages = await all_resource_pages(client, "handoff://sessions/big/context")
    assert (shape(by_resource), pages) == (expected_entries(), -(-n // 100))
    by_resource, pages = await all_resource_pages(client, "handoff://sessions/big/context?limit=37")
    assert (shape(by_resource), pages) == (expected_entries(), -(-n // 37))

    session = (await call(client, "get_session", {"session_key": "big"}))["session"]
    assert session["entry_count"] == n
    assert session["counts_by_type"] == {t: len(expected_entries([t])) for t in CONTEXT_TYPES}


async def test_pagination_over_1000_entries_in_memory(seeded_db: ServerDatabase) -> None:
    async with Container.build(settings_for(seeded_db)) as container:
        with anyio.fail_after(120):
            async with Client(build_server(container)) as client:
                await check_pagination(client)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_pagination_over_1000_entries_over_real_transports(seeded_db: ServerDatabase, transport: str) -> None:
    with anyio.fail_after(120):
        if transport == "http":
            with http_server(seeded_db) as server:
                async with Client(server.url) as client:
                    await check_pagination(client)
        else:
            async with Client(stdio_params(seeded_db)) as client:
                await check_pagination(client)
