"""The fuzz step's judge: what it counts as a refusal and what as a server fault.

The fuzzer itself scores an internal error as "rejected, handled correctly", so our verdicts are what
makes the CI step able to fail at all; these tests pin them down, the last one through the real tap
and a real `handoff stdio`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from tests.e2e.servers import HANDOFF, server_env
from tests.security.fuzzing import TAP, faults_in_server_log, tally_request_log, tally_tap_record


def _request(id_: int, method: str = "tools/call tool") -> dict[str, object]:
    return {"kind": "request", "id": repr(id_), "method": method}


def test_refusals_are_counted_and_not_faults() -> None:
    events = [
        {"kind": "start", "pid": 1},
        _request(1),
        {"kind": "response", "id": "1", "tool_error": "invalid_input"},
        _request(2),
        {"kind": "response", "id": "2", "rpc_error": -32602, "code": "not_found", "message": "no such session"},
        _request(3),
        {"kind": "response", "id": "3", "rpc_error": -32601, "message": "Method not found"},
        _request(4),
        {"kind": "response", "id": "4", "tool_error": None},
    ]
    tally = tally_tap_record(events)
    assert (tally.calls, tally.refusals, tally.faults) == (4, 3, [])


def test_internal_errors_garbage_exits_restarts_and_silence_are_faults() -> None:
    events = [
        {"kind": "start", "pid": 1},
        _request(1, "tools/call get_context"),
        {"kind": "response", "id": "1", "tool_error": "internal"},
        _request(2, "resources/read handoff://sessions"),
        {"kind": "response", "id": "2", "rpc_error": -32603, "message": "boom"},
        {"kind": "non_json", "line": "Traceback (most recent call last):"},
        _request(3, "ping"),
        {"kind": "exit", "code": 1},
        {"kind": "start", "pid": 2},
    ]
    faults = tally_tap_record(events).faults
    assert faults[0] == "tools/call get_context: answered internal"
    assert faults[1] == "resources/read handoff://sessions: JSON-RPC error -32603: boom"
    assert "non-JSON line on stdout" in faults[2]
    assert faults[3] == "server exited with status 1"
    assert "restart the server 1 time(s)" in faults[4]
    assert faults[5] == "1 request(s) ping id=3 never answered"
    assert len(faults) == 6


def test_a_reused_request_id_answered_once_is_one_unanswered_request() -> None:
    events = [_request(7), _request(7), {"kind": "response", "id": "7", "tool_error": None}]
    assert tally_tap_record(events).faults == ["1 request(s) tools/call tool id=7 never answered"]


def test_server_log_errors_and_raw_text_are_faults_info_lines_are_not() -> None:
    lines = [
        json.dumps({"event": "request", "level": "info", "outcome": "error invalid_input"}),
        json.dumps({"event": "tool crashed", "level": "error", "tool": "get_context", "exception": "T\nKeyError: 'x'"}),
        "Traceback (most recent call last):",
        "",
    ]
    faults = faults_in_server_log(lines)
    assert faults == [
        'server logged error: tool crashed {"tool": "get_context", "exception": "KeyError: \'x\'"}',
        "raw text on the server's stderr: Traceback (most recent call last):",
    ]


def test_http_request_lines_count_refusals_and_internal_outcomes() -> None:
    lines = [
        json.dumps({"event": "request", "outcome": "ok", "method": "tools/call"}),
        json.dumps({"event": "request", "outcome": "error not_found", "method": "resources/read"}),
        json.dumps({"event": "request", "outcome": "error internal", "method": "tools/call", "tool": "get_session"}),
        json.dumps({"event": "something else", "outcome": "error internal"}),
    ]
    tally = tally_request_log(lines)
    assert (tally.calls, tally.refusals, tally.faults) == (3, 1, ["tools/call get_session: internal"])


def test_the_tap_passes_a_real_server_through_and_records_what_crossed(tmp_path: Path) -> None:
    record, stderr = tmp_path / "tap.jsonl", tmp_path / "server.log"
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_session", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 3, "method": "no/such/method"},
    ]
    # stdin stays open until every answer is back: a client that closes it first is saying goodbye
    # (the SDK then drops what is still in flight; see the report of the fuzz step).
    tap = subprocess.Popen(
        [sys.executable, str(TAP), str(record), str(stderr), "--", HANDOFF, "stdio"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=server_env(f"sqlite:///{tmp_path / 'handoff.db'}"),
    )
    assert tap.stdin is not None and tap.stdout is not None
    answers: dict[int, dict[str, object]] = {}
    try:
        tap.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
        tap.stdin.flush()
        watchdog = threading.Timer(60, tap.kill)  # a hang fails the test instead of blocking it
        watchdog.start()
        for line in tap.stdout:
            message = json.loads(line)
            answers[message["id"]] = message
            if len(answers) == 3:
                break
        watchdog.cancel()
        tap.stdin.close()
        assert tap.wait(timeout=30) == 0
    finally:
        if tap.poll() is None:
            tap.kill()
            tap.wait(timeout=10)
        tap.stdout.close()
    assert answers[1]["result"]["serverInfo"]["name"]  # type: ignore[index]  # passed through untouched
    events = [json.loads(line) for line in record.read_text().splitlines()]
    tally = tally_tap_record(events)
    # initialize answered; get_session without its key refused as a tool error; unknown method -32601
    assert (tally.calls, tally.refusals, tally.faults) == (3, 2, [])
    assert [e.get("tool_error") for e in events if e["kind"] == "response" and e["id"] == "2"] == ["invalid_input"]
    assert events[-1] == {"kind": "exit", "code": 0, "t": events[-1]["t"]}  # stdin closed: a clean exit
