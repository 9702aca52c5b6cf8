"""Over stdio, a request the SDK cannot parse still gets an answer naming its id, never silence.

Found while triaging the fuzz step: the SDK dropped such lines with a debug log, so a client that
sent `"params": "x"` or a lone surrogate in its content waited for an answer forever.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.e2e.servers import HANDOFF, server_env

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def _answers(tmp_path: Path, lines: list[str], expected_ids: set[Any], seconds: float = 60.0) -> dict[Any, Any]:
    """Send `lines` to a real `handoff stdio` and collect answers until every expected id is in (or time is up)."""
    process = subprocess.Popen(
        [HANDOFF, "stdio"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=server_env(f"sqlite:///{tmp_path / 'handoff.db'}"),
    )
    assert process.stdin is not None and process.stdout is not None
    received: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: [received.put(line) for line in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    answers: dict[Any, Any] = {}
    try:
        process.stdin.write(b"".join(line.encode("utf-8", "surrogatepass") + b"\n" for line in lines))
        process.stdin.flush()
        deadline = time.monotonic() + seconds
        while not expected_ids <= answers.keys() and time.monotonic() < deadline:
            try:
                raw = received.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            message = json.loads(raw)  # every line on stdout is JSON
            if "id" in message:
                answers[message["id"]] = message
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        process.stdout.close()
    return answers


def test_malformed_requests_are_answered_with_their_id_and_the_server_carries_on(tmp_path: Path) -> None:
    lines = [
        json.dumps(INITIALIZE),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": "x"}),
        json.dumps({"jsonrpc": "2.0", "id": "no-version", "method": "tools/list"}).replace('"jsonrpc": "2.0", ', ""),
        # A lone surrogate: valid for Python's json, refused by the SDK's parser.
        '{"jsonrpc": "2.0", "id": 13, "method": "tools/call", "params": {"name": "update_context", '
        '"arguments": {"session_key": "s", "context_type": "message", "content": "\\ud800"}}}',
        json.dumps({"jsonrpc": "2.0", "method": "notifications/whatever", "params": "x"}),  # nobody waits: no answer
        json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
    ]
    answers = _answers(tmp_path, lines, {1, 2, 7, "no-version", 13})
    for request_id in (7, "no-version", 13):
        assert answers[request_id]["error"]["code"] == -32600, answers.get(request_id)
        assert "invalid request" in answers[request_id]["error"]["message"]
    assert answers[2]["result"] == {}  # the connection survived


def test_a_line_that_is_not_json_gets_a_parse_error_with_a_null_id(tmp_path: Path) -> None:
    lines = [json.dumps(INITIALIZE), "this is not json", json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"})]
    answers = _answers(tmp_path, lines, {1, 2, None})
    assert answers[None]["error"]["code"] == -32700
    assert answers[2]["result"] == {}


def test_a_batch_gets_an_invalid_request_with_a_null_id(tmp_path: Path) -> None:
    batch = json.dumps([{"jsonrpc": "2.0", "id": 5, "method": "ping"}])  # batching left MCP in 2025-06-18
    ping = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"})
    answers = _answers(tmp_path, [json.dumps(INITIALIZE), batch, ping], {1, 2, None})
    assert answers[None]["error"]["code"] == -32600 and "batches" in answers[None]["error"]["message"]
    assert answers[2]["result"] == {}  # the connection survived
