"""A transparent pipe between a stdio MCP client and `handoff stdio` that writes down what crossed it.

    python tests/security/stdio_tap.py RECORD.jsonl SERVER_STDERR.log -- handoff stdio

The fuzzer starts this script as if it were the server. Every line goes through unchanged; on the
way we note each request the client sent, each answer the server gave (its JSON-RPC error code, or
the `error.code` inside a tool's `isError` result), any line on stdout that is not JSON, and the
server's exit. The record is flushed per line because the fuzzer ends its run with SIGKILL to the
whole process group: nothing written "at the end" would survive.

Standard library only: it runs in the server's venv but must not import the server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any


class Record:
    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, **event: Any) -> None:
        event["t"] = time.monotonic()
        line = json.dumps(event, ensure_ascii=False, default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()


def tool_error_code(result: Any) -> str | None:
    """The code of a tool's refusal (`{"error": {"code": ...}}` in its text), or None when it succeeded."""
    if not isinstance(result, dict) or result.get("isError") is not True:
        return None
    content = result.get("content")
    first = content[0] if isinstance(content, list) and content else None
    text = first.get("text") if isinstance(first, dict) else None
    try:
        payload = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    # An isError result that is not ours (the SDK's own wording) is noted as such, not dropped.
    return code if isinstance(code, str) else "unstructured"


def note_client_line(record: Record, raw: bytes) -> None:
    try:
        message = json.loads(raw)
    except ValueError:
        record.write(kind="client_garbage", size=len(raw))
        return
    for item in message if isinstance(message, list) else [message]:
        if isinstance(item, dict) and "method" in item and item.get("id") is not None:
            params = item.get("params")
            name = params.get("name") or params.get("uri") if isinstance(params, dict) else None
            record.write(kind="request", id=repr(item["id"]), method=f"{item['method']} {name or ''}".strip()[:120])


def note_server_line(record: Record, raw: bytes) -> None:
    try:
        message = json.loads(raw)
    except ValueError:
        record.write(kind="non_json", line=raw[:300].decode("utf-8", "replace"))
        return
    for item in message if isinstance(message, list) else [message]:
        if not isinstance(item, dict) or "method" in item:
            continue  # a notification or a request from the server to the client
        error = item.get("error")
        if isinstance(error, dict):
            data = error.get("data")
            record.write(
                kind="response",
                id=repr(item.get("id")),
                rpc_error=error.get("code"),
                code=data.get("code") if isinstance(data, dict) else None,
                message=str(error.get("message"))[:300],
            )
        else:
            record.write(kind="response", id=repr(item.get("id")), tool_error=tool_error_code(item.get("result")))


def pump_client(record: Record, source: IO[bytes], server_stdin: IO[bytes]) -> None:
    for raw in source:
        note_client_line(record, raw)
        try:
            server_stdin.write(raw)
            server_stdin.flush()
        except (BrokenPipeError, ValueError):
            return
    server_stdin.close()


def main(argv: list[str]) -> int:
    record_path, stderr_path, separator, *command = argv
    if separator != "--" or not command:
        print("usage: stdio_tap.py RECORD STDERR -- COMMAND...", file=sys.stderr)
        return 2
    record = Record(Path(record_path))
    with Path(stderr_path).open("ab") as server_stderr:
        server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=server_stderr)
        assert server.stdin is not None and server.stdout is not None
        record.write(kind="start", pid=server.pid)
        threading.Thread(target=pump_client, args=(record, sys.stdin.buffer, server.stdin), daemon=True).start()
        out = sys.stdout.buffer
        for raw in server.stdout:
            note_server_line(record, raw)
            try:
                out.write(raw)
                out.flush()
            except BrokenPipeError:
                break
        code = server.wait()
    record.write(kind="exit", code=code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
