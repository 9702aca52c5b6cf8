"""Crash safety: SIGKILL the HTTP server in the middle of an append loop, restart it on the same database."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2  # the SDK's HTTP client; a dead server surfaces as its TransportError
import pytest
from mcp.client import Client

from tests.conftest import structured
from tests.e2e.servers import ServerDatabase, http_server

pytestmark = pytest.mark.anyio

KIB = 1024
ACKNOWLEDGED_BEFORE_KILL = 24


@dataclass(frozen=True)
class Receipt:
    sequence_number: int
    content: str
    sha256: str
    content_type: str


def content_for(i: int) -> tuple[str, str]:
    """Entry i: sizes from a few bytes to 256 KiB, ASCII and multi-byte text."""
    label = f"entry {i}: "
    match i % 5:
        case 0:
            return "message", label + "short ascii"
        case 1:
            return "message", label + "grüße, 你好, привет, emoji 🚀 " * 40
        case 2:
            unit = "déjà vu ⟨λ⟩ 😀 "
            return "file", label + unit * (256 * KIB // len(unit.encode()) + 1)  # just over 256 KiB in UTF-8
        case 3:
            return "tool_call", label + "x" * (256 * KIB - len(label))  # exactly 256 KiB
        case _:
            return "system", label + "ünïcödé " * 8 * KIB


async def read_all_entries(client: Client, session_key: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        args: dict[str, Any] = {"session_key": session_key, "limit": 50}
        if cursor is not None:
            args["cursor"] = cursor
        page = structured(await client.call_tool("get_context", args))
        entries.extend(page["entries"])
        cursor = page["next_cursor"]
        if cursor is None:
            return entries


async def test_every_acknowledged_append_survives_kill_9_mid_loop(server_db: ServerDatabase) -> None:
    db = server_db
    acknowledged: list[Receipt] = []
    in_flight: list[tuple[str, str]] = []  # what was sent but not (yet) acknowledged
    enough = anyio.Event()

    with http_server(db) as server:
        with anyio.fail_after(30):
            async with Client(server.url) as setup:
                structured(
                    await setup.call_tool("register_session", {"session_key": "crash", "source_agent": "writer"})
                )

        async def append_forever() -> None:
            async with Client(server.url) as client:
                for i in itertools.count():
                    kind, content = content_for(i)
                    in_flight[:] = [(kind, content)]
                    result = structured(
                        await client.call_tool(
                            "update_context",
                            {"session_key": "crash", "context_type": kind, "content": content, "metadata": {"i": i}},
                        )
                    )
                    in_flight.clear()
                    entry = result["entry"]
                    acknowledged.append(Receipt(entry["sequence_number"], content, entry["content_sha256"], kind))
                    if len(acknowledged) == ACKNOWLEDGED_BEFORE_KILL:
                        enough.set()  # no await follows: the next append is on the wire when the kill lands

        async def kill_when_enough() -> None:
            await enough.wait()
            await anyio.to_thread.run_sync(server.kill)

        with anyio.fail_after(60), pytest.raises(ExceptionGroup) as failure:
            async with anyio.create_task_group() as tg:
                tg.start_soon(kill_when_enough)
                tg.start_soon(append_forever)
        assert failure.group_contains(httpx2.TransportError)
        assert server.process.returncode == -9

    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL
    assert [r.sequence_number for r in acknowledged] == list(range(1, len(acknowledged) + 1))
    for receipt in acknowledged:
        assert receipt.sha256 == hashlib.sha256(receipt.content.encode()).hexdigest()
    assert any(len(r.content.encode()) >= 256 * KIB for r in acknowledged)

    with http_server(db) as restarted:
        with anyio.fail_after(60):
            async with Client(restarted.url) as client:
                entries = await read_all_entries(client, "crash")
                session = structured(await client.call_tool("get_session", {"session_key": "crash"}))["session"]
                after = structured(
                    await client.call_tool(
                        "update_context",
                        {"session_key": "crash", "context_type": "message", "content": "after the crash"},
                    )
                )
                tail = structured(
                    await client.call_tool("get_context", {"session_key": "crash", "cursor": None, "limit": 500})
                )

    total = len(entries)
    assert [e["sequence_number"] for e in entries] == list(range(1, total + 1))
    # Sequential appends: at most the one in flight at the kill may have landed beyond the receipts.
    assert total in (len(acknowledged), len(acknowledged) + 1)
    for receipt, stored in zip(acknowledged, entries, strict=False):
        assert stored["sequence_number"] == receipt.sequence_number
        assert stored["content"] == receipt.content
        assert stored["context_type"] == receipt.content_type
        assert stored["content_bytes"] == len(receipt.content.encode())
    if total > len(acknowledged):
        assert in_flight, "an entry beyond the receipts exists, but nothing was in flight"
        kind, content = in_flight[0]
        assert entries[-1]["content"] == content
        assert entries[-1]["context_type"] == kind
        assert entries[-1]["metadata"] == {"i": total - 1}
    assert session["entry_count"] == total
    assert session["content_bytes"] == sum(e["content_bytes"] for e in entries)
    assert after["entry"]["sequence_number"] == total + 1
    assert tail["entries"][-1]["sequence_number"] == total + 1
    assert tail["entries"][-1]["content"] == "after the crash"
