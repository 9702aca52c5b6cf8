"""Many clients on one session at once, over real loopback HTTP to a real `handoff serve` subprocess.

Correctness must come from the database (BEGIN IMMEDIATE on SQLite, the row lock on PostgreSQL, the
counter on the session row, the unique constraints), so these tests open separate connections and fire
their calls concurrently, on both backends.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp.client import Client

from tests.conftest import structured, tool_error
from tests.e2e.servers import ServerDatabase, http_server

pytestmark = pytest.mark.anyio

CLIENTS = 16
APPENDS_PER_CLIENT = 25


@asynccontextmanager
async def connected_clients(url: str, count: int) -> AsyncIterator[list[Client]]:
    """`count` independent MCP connections to the same server."""
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(url)) for _ in range(count)]
        yield clients


async def read_all_entries(client: Client, session_key: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        args: dict[str, Any] = {"session_key": session_key, "limit": 500}
        if cursor is not None:
            args["cursor"] = cursor
        page = structured(await client.call_tool("get_context", args))
        entries.extend(page["entries"])
        cursor = page["next_cursor"]
        if cursor is None:
            return entries


async def test_sixteen_clients_appending_at_once_get_gap_free_unique_sequence_numbers(
    server_db: ServerDatabase,
) -> None:
    db = server_db
    receipts: dict[int, list[tuple[str, dict[str, Any]]]] = {i: [] for i in range(CLIENTS)}

    async def append_many(client: Client, index: int) -> None:
        for n in range(APPENDS_PER_CLIENT):
            # Different sizes and scripts, so a mixed-up row would not compare equal by accident.
            content = f"client {index} entry {n} · данные · 数据 " + "x" * (index * 37 + n * 11)
            result = structured(
                await client.call_tool(
                    "update_context",
                    {
                        "session_key": "shared",
                        "context_type": "message" if n % 2 else "tool_call",
                        "content": content,
                        "metadata": {"client": index, "n": n},
                        "agent": f"agent-{index}",
                    },
                )
            )
            receipts[index].append((content, result["entry"]))

    with http_server(db) as server:
        with anyio.fail_after(120):
            async with connected_clients(server.url, CLIENTS) as clients:
                structured(
                    await clients[0].call_tool("register_session", {"session_key": "shared", "source_agent": "lead"})
                )
                # Everyone may write: a collaboration handoff to each agent.
                for i in range(CLIENTS):
                    structured(
                        await clients[0].call_tool(
                            "request_handoff",
                            {"session_key": "shared", "target_agent": f"agent-{i}", "handoff_type": "collaboration"},
                        )
                    )
                async with anyio.create_task_group() as tg:
                    for i, client in enumerate(clients):
                        tg.start_soon(append_many, client, i)

                entries = await read_all_entries(clients[-1], "shared")
                session = structured(await clients[-1].call_tool("get_session", {"session_key": "shared"}))["session"]

    total = CLIENTS * APPENDS_PER_CLIENT
    acknowledged = sorted(r["sequence_number"] for per in receipts.values() for _, r in per)
    assert acknowledged == list(range(1, total + 1))
    assert [e["sequence_number"] for e in entries] == list(range(1, total + 1))
    assert session["entry_count"] == total

    by_sequence = {e["sequence_number"]: e for e in entries}
    for index, per_client in receipts.items():
        assert len(per_client) == APPENDS_PER_CLIENT
        for n, (content, receipt) in enumerate(per_client):
            stored = by_sequence[receipt["sequence_number"]]
            assert stored["content"] == content
            assert receipt["content_sha256"] == hashlib.sha256(content.encode()).hexdigest()
            assert receipt["content_bytes"] == len(content.encode())
            assert stored["metadata"] == {"client": index, "n": n}
            assert stored["agent"] == f"agent-{index}"
        # A client's own appends are sequential, so they land in the order it sent them.
        own = [r["sequence_number"] for _, r in per_client]
        assert own == sorted(own)
    # The appends really overlapped: some client's entries are interleaved with another's.
    assert any(
        [r["sequence_number"] for _, r in per]
        != list(range(per[0][1]["sequence_number"], 1 + per[-1][1]["sequence_number"]))
        for per in receipts.values()
    )


async def test_idempotent_retries_land_once_sequentially_and_concurrently(server_db: ServerDatabase) -> None:
    db = server_db
    append = {"session_key": "idem", "context_type": "message", "content": "run the migrations"}
    with http_server(db) as server:
        with anyio.fail_after(60):
            async with connected_clients(server.url, 6) as clients:
                structured(await clients[0].call_tool("register_session", {"session_key": "idem", "source_agent": "a"}))

                first = structured(await clients[0].call_tool("update_context", {**append, "idempotency_key": "k1"}))
                retry = structured(await clients[1].call_tool("update_context", {**append, "idempotency_key": "k1"}))
                assert first["entry"]["replayed"] is False
                assert retry["entry"]["replayed"] is True
                assert retry["entry"]["sequence_number"] == first["entry"]["sequence_number"] == 1
                assert retry["entry"]["content_sha256"] == first["entry"]["content_sha256"]
                assert retry["entry"]["created_at"] == first["entry"]["created_at"]

                racing: list[dict[str, Any]] = []

                async def send(client: Client) -> None:
                    racing.append(
                        structured(
                            await client.call_tool(
                                "update_context", {**append, "content": "deploy", "idempotency_key": "k2"}
                            )
                        )["entry"]
                    )

                async with anyio.create_task_group() as tg:
                    for client in clients:
                        tg.start_soon(send, client)

                assert len(racing) == len(clients)
                assert {e["sequence_number"] for e in racing} == {2}
                assert sorted(e["replayed"] for e in racing) == [False] + [True] * (len(clients) - 1)

                different = await clients[2].call_tool(
                    "update_context", {**append, "content": "something else", "idempotency_key": "k1"}
                )
                error = tool_error(different)
                assert error["code"] == "conflict"
                assert "k1" in error["message"]
                other_type = await clients[3].call_tool(
                    "update_context", {**append, "context_type": "system", "idempotency_key": "k1"}
                )
                assert tool_error(other_type)["code"] == "conflict"

                entries = await read_all_entries(clients[4], "idem")
                session = structured(await clients[4].call_tool("get_session", {"session_key": "idem"}))["session"]

    assert [(e["sequence_number"], e["content"]) for e in entries] == [(1, "run the migrations"), (2, "deploy")]
    assert session["entry_count"] == 2


async def test_concurrent_register_of_one_key_lets_exactly_one_client_win(server_db: ServerDatabase) -> None:
    db = server_db
    outcomes: dict[int, Any] = {}

    async def register(client: Client, index: int) -> None:
        outcomes[index] = await client.call_tool(
            "register_session",
            {"session_key": "contested", "source_agent": f"agent-{index}", "metadata": {"secret": f"token-{index}"}},
        )

    with http_server(db) as server:
        with anyio.fail_after(60):
            async with connected_clients(server.url, 8) as clients:
                async with anyio.create_task_group() as tg:
                    for i, client in enumerate(clients):
                        tg.start_soon(register, client, i)
                session = structured(await clients[0].call_tool("get_session", {"session_key": "contested"}))["session"]
                listed = structured(await clients[0].call_tool("list_sessions", {}))["sessions"]

    winners = [i for i, result in outcomes.items() if not result.is_error]
    assert len(winners) == 1
    winner = winners[0]
    assert session["owner_agent"] == f"agent-{winner}"
    assert session["metadata"] == {"secret": f"token-{winner}"}
    assert [s["session_key"] for s in listed] == ["contested"]
    for i, result in outcomes.items():
        if i == winner:
            continue
        error = tool_error(result)
        assert error["code"] == "already_exists"
        assert error["details"]["session"]["owner_agent"] == f"agent-{winner}"
        assert error["details"]["session"]["status"] == "active"
        assert f"token-{winner}" not in result.content[0].text
