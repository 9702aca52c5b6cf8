"""The command line a user types: migrate, sessions list/show, and a clean stdout on stdio."""

from __future__ import annotations

import json
import queue
import sqlite3
import subprocess
import threading
import time

import anyio
import pytest

from handoff.storage.migrate import head_revision
from tests.e2e.servers import HANDOFF, ServerDatabase, server_env


def _run(db: ServerDatabase, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HANDOFF, *args], capture_output=True, text=True, env=server_env(db), timeout=60, check=False)


@pytest.fixture
def db(server_db: ServerDatabase) -> ServerDatabase:
    """A fresh database on each backend (tests about the stdio stream alone narrow it to SQLite)."""
    return server_db


def test_migrate_creates_the_schema_and_check_reports_it(db: ServerDatabase) -> None:
    check = _run(db, "migrate", "--check")
    assert check.returncode == 1
    assert "schema empty" in check.stdout
    first = _run(db, "migrate")
    assert first.returncode == 0, first.stderr
    assert f"schema empty -> {head_revision()}" in first.stdout
    again = _run(db, "migrate")
    assert "is current" in again.stdout
    assert _run(db, "migrate", "--check").returncode == 0


def _stdio_exchange(db: ServerDatabase, messages: list[dict[str, object]]) -> tuple[list[str], str]:
    """Talk raw JSON-RPC to `handoff serve --transport stdio`, one request at a time; close stdin at the end."""
    proc = subprocess.Popen(
        [HANDOFF, "serve", "--transport", "stdio"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env(db, HANDOFF_LOG_LEVEL="DEBUG"),
    )
    assert proc.stdin is not None and proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)  # type: ignore[union-attr]
    reader.start()
    errors: list[str] = []
    # Drain stderr concurrently: at DEBUG the server logs a lot, and a full pipe would block it.
    err_reader = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    err_reader.start()
    received: list[str] = []
    deadline = time.monotonic() + 60
    for message in messages:
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        # One request at a time: the server may answer pipelined requests in any order (and does,
        # on PostgreSQL), so a call that depends on the previous one waits for its reply.
        while "id" in message and message["id"] not in {json.loads(line).get("id") for line in received}:
            received.append(lines.get(timeout=max(0.1, deadline - time.monotonic())).rstrip("\n"))
    proc.stdin.close()
    proc.wait(timeout=60)
    reader.join(timeout=10)
    err_reader.join(timeout=10)
    proc.stdout.close()
    proc.stderr.close()  # type: ignore[union-attr]
    stderr = "".join(errors)
    while not lines.empty():
        received.append(lines.get().rstrip("\n"))
    assert proc.returncode == 0, stderr[-2000:]
    return received, stderr


# SQLite only: what reaches stdout and stderr does not depend on the storage backend.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_stdio_stdout_carries_only_json_rpc_even_at_debug_level(db: ServerDatabase) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "register_session", "arguments": {"session_key": "cli-1", "source_agent": "a"}},
    }
    bad = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "get_session", "arguments": {}}}
    lines, stderr = _stdio_exchange(db, [init, {"jsonrpc": "2.0", "method": "notifications/initialized"}, call, bad])
    assert lines, stderr
    replies = [json.loads(line) for line in lines]  # any log line on stdout would fail to parse here
    assert all(r.get("jsonrpc") == "2.0" for r in replies)
    by_id = {r["id"]: r for r in replies if "id" in r}
    assert by_id[1]["result"]["serverInfo"]["name"] == "handoff"
    assert by_id[2]["result"]["structuredContent"]["session"]["session_key"] == "cli-1"
    assert by_id[3]["result"]["isError"] is True
    # The logs went to stderr, as JSON lines with a correlation id per request.
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    requests = [entry for entry in logged if entry.get("event") == "request"]
    assert {r.get("tool") for r in requests} >= {"register_session", "get_session"}
    assert all(len(r["correlation_id"]) == 16 for r in requests)


def test_sessions_list_and_show_print_what_is_stored(db: ServerDatabase) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
    }

    def call(i: int, name: str, arguments: dict[str, object]) -> dict[str, object]:
        return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": arguments}}

    replies, _ = _stdio_exchange(
        db,
        [
            init,
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            call(2, "register_session", {"session_key": "cli-show", "source_agent": "claude"}),
            call(3, "update_context", {"session_key": "cli-show", "context_type": "message", "content": "hello there"}),
        ],
    )
    # Only the answers: a new session is also announced (notifications/resources/list_changed).
    answers = [m for m in map(json.loads, replies) if "id" in m]
    assert [m["result"].get("isError", False) for m in answers[1:]] == [False, False], replies
    listed = _run(db, "sessions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [s["session_key"] for s in json.loads(listed.stdout)] == ["cli-show"]
    table = _run(db, "sessions", "list")
    assert "cli-show" in table.stdout and "claude" in table.stdout
    shown = _run(db, "sessions", "show", "cli-show", "--json")
    body = json.loads(shown.stdout)
    assert body["session"]["entry_count"] == 1
    assert [e["content"] for e in body["latest_entries"]] == ["hello there"]
    missing = _run(db, "sessions", "show", "nope")
    assert missing.returncode == 1
    assert "not_found" in missing.stderr and "nope" in missing.stderr


def test_migrate_check_reports_a_schema_changed_by_hand(db: ServerDatabase) -> None:
    assert _run(db, "migrate").returncode == 0
    assert "no drift" in _run(db, "migrate", "--check").stdout
    drop_index_by_hand(db, "ix_handoffs_target_status_created")
    check = _run(db, "migrate", "--check")
    assert check.returncode == 1
    assert "ix_handoffs_target_status_created" in check.stdout and "drift" in check.stdout


def drop_index_by_hand(db: ServerDatabase, index: str) -> None:
    """What an operator with a SQL shell might do, behind the migrations' back."""
    if db.sqlite_path is not None:
        with sqlite3.connect(db.sqlite_path) as conn:
            conn.execute(f"DROP INDEX {index}")
        return

    async def drop() -> None:
        import asyncpg

        conn = await asyncpg.connect(db.url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f'DROP INDEX "{db.env["HANDOFF_DB__SCHEMA_NAME"]}"."{index}"')
        finally:
            await conn.close()

    anyio.run(drop)
