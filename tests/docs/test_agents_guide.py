"""Every example in docs/agents.md, run for real: connecting, the hand-off flow, notes, imports, hooks, errors.

How the examples are marked and run: tests/docs/guide_harness.py.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client
from pydantic import SecretStr

from handoff.config import Settings
from tests.conftest import tool_error
from tests.docs.guide_harness import (
    AGENTS_GUIDE,
    EXAMPLES,
    ROOT,
    Background,
    Example,
    Workspace,
    call,
    example_params,
    run_example,
    runs,
)

CASES = ROOT / "bench" / "handoff_quality" / "cases"


def brief_sections(brief: str) -> dict[str, str]:
    sections: dict[str, str] = {}
    title = ""
    for line in brief.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            sections[title] = ""
        elif title:
            sections[title] += line + "\n"
    return sections


# -- the runners ------------------------------------------------------------------------------------------


@runs("connect-stdio")
def _connect_stdio(ex: Example, ws: Workspace) -> None:
    run = ws.python(ex.code)
    assert run.returncode == 0, run.output
    tools = set(run.stdout.split())
    assert {"register_session", "update_context", "request_handoff", "get_context", "get_handoff"} <= tools


def send_flow(ws: Workspace, url: str) -> str:
    run = ws.python(EXAMPLES["flow-sender"].body, HANDOFF_URL=url)
    assert run.returncode == 0, run.output
    assert "You are about to hand session `fix-login-bug`" in run.stdout  # the prepare_handoff prompt
    handoff_id = run.stdout.split()[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", handoff_id), run.stdout[-500:]
    return handoff_id


@runs("flow-sender")
def _flow_sender(ex: Example, ws: Workspace) -> None:
    with ws.server() as server:
        handoff_id = send_flow(ws, server.url)

        async def read() -> dict[str, Any]:
            with anyio.fail_after(60):
                async with Client(server.url) as client:
                    return dict((await call(client, "get_handoff", handoff_id=handoff_id))["handoff"])

        handoff = anyio.run(read)
    sections = brief_sections(handoff["brief"])
    assert next(iter(sections)) == "Handoff note from the agent"
    assert "Log-in works for addresses containing +" in sections["Handoff note from the agent"]
    assert "Encoding + in the login form" in sections["Handoff note from the agent"]
    assert "tests/test_login.py::test_plus_in_email" in sections["Tests"]
    assert "do not change the users table" in sections["Constraints from the user"]
    assert "`app/auth.py`: edited" in sections["Files"]
    assert handoff["handoff_type"] == "full_handoff" and handoff["brief_tokens"] <= 1500


@runs("flow-receiver")
def _flow_receiver(ex: Example, ws: Workspace) -> None:
    with ws.server() as server:
        handoff_id = send_flow(ws, server.url)
        run = ws.python(ex.code, HANDOFF_URL=server.url)  # no id passed: it is in codex's inbox
    assert run.returncode == 0, run.output
    assert f"accepted {handoff_id}" in run.stdout
    assert "# Handoff brief: session `fix-login-bug`, claude-code → codex" in run.stdout
    assert "get_context(session_key=" in run.stdout  # the instructions
    assert "read 4 entries, last #4" in run.stdout
    assert "wrote #5" in run.stdout


@runs("brief-inputs")
def _brief_inputs(ex: Example, ws: Workspace) -> None:
    calls = json.loads(ex.code)
    (key,) = {c["session_key"] for c in calls}
    with ws.server() as server:

        async def build() -> str:
            with anyio.fail_after(60):
                async with Client(server.url) as client:
                    await call(client, "register_session", session_key=key, source_agent="claude-code")
                    for arguments in calls:
                        await call(client, "update_context", **arguments)
                    result = await call(client, "request_handoff", session_key=key, target_agent="codex")
                    return str(result["handoff"]["brief"])

        sections = brief_sections(anyio.run(build))
    assert "FAILING `tests/test_checkout.py::test_large_cart_checkout`" in sections["Tests"]
    assert "Batch the price lookups in Cart.total()" in sections["Plan and to-do list"]
    assert "Add a test with 200 items" in sections["Plan and to-do list"]
    assert "price_service.get_many()" in sections["Findings and decisions"]
    assert "Raising the gateway timeout" in sections["Rejected or reverted"]
    assert "Keep the public API of cart.py unchanged." in sections["Constraints from the user"]
    assert "`shop/cart.py`: edited" in sections["Files"]


@runs("note")
def _note(ex: Example, ws: Workspace) -> None:
    note = json.loads(ex.code)
    with ws.server() as server:

        async def hand_off() -> dict[str, Any]:
            with anyio.fail_after(60):
                async with Client(server.url) as client:
                    await call(client, "register_session", session_key="checkout-timeout", source_agent="claude-code")
                    await call(
                        client, "update_context", session_key="checkout-timeout", context_type="message", content="go"
                    )
                    result = await call(
                        client, "request_handoff", session_key="checkout-timeout", target_agent="codex", note=note
                    )
                    return dict(result["handoff"])

        handoff = anyio.run(hand_off)
    assert handoff["note"] == note
    sections = brief_sections(handoff["brief"])
    assert next(iter(sections)) == "Handoff note from the agent"
    for value in note.values():
        for text in [value] if isinstance(value, str) else value:
            assert text in sections["Handoff note from the agent"], text


def claude_code_log(ws: Workspace, project: str = "-home-me-shop") -> tuple[Path, str]:
    source = CASES / "cc-volcano-dra-quota" / "source.jsonl"
    session_id = json.loads(source.read_text().splitlines()[0])["sessionId"]
    target = ws.home / ".claude" / "projects" / project / f"{session_id}.jsonl"
    target.parent.mkdir(parents=True)
    shutil.copy(source, target)
    return target, session_id


@runs("import-claude-code")
def _import_claude_code(ex: Example, ws: Workspace) -> None:
    _, session_id = claude_code_log(ws)
    first = ws.sh(ex.code)
    assert first.returncode == 0, first.output
    ex.check_output(first)
    result = json.loads(first.stdout)
    assert result["session_key"] == f"claude-code-{session_id}" and result["imported"] > 10
    again = json.loads(ws.sh(ex.code).stdout)
    assert again["imported"] == 0 and again["created"] is False


@runs("import-over-mcp")
def _import_over_mcp(ex: Example, ws: Workspace) -> None:
    shutil.copy(CASES / "aider-iot-pytorch" / "source.md", ws.root / ".aider.chat.history.md")
    with ws.server() as server:
        run = ws.sh(ex.code, HANDOFF_URL=server.url)
        assert run.returncode == 0, run.output
        result = json.loads(run.stdout)

        async def owner() -> str:
            with anyio.fail_after(60):
                async with Client(server.url) as client:
                    session = await call(client, "get_session", session_key="payments-refactor")
                    return str(session["session"]["owner_agent"])

        assert anyio.run(owner) == "aider"
    assert result["format"] == "aider" and result["session_key"] == "payments-refactor" and result["imported"] > 0


def detached_workers(home: Path) -> list[int]:
    """The `handoff hook … --wait` workers started for this test's HOME (read from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone already, or not ours to read
        if b"hook" in argv and b"--wait" in argv and f"HOME={home}".encode() in environ:
            found.append(int(proc.name))
    return found


def wait_for_exit(pid: int, timeout: float) -> None:
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # it has finished
    try:
        ready, _, _ = select.select([handle], [], [], timeout)
        assert ready, f"the hook's worker {pid} still runs after {timeout}s"
    finally:
        os.close(handle)


CLAUDE_CODE_HOOK_EVENTS = {
    "PreToolUse",
    "PostToolUse",
    "Notification",
    "UserPromptSubmit",
    "Stop",
    "SubagentStop",
    "PreCompact",
    "SessionStart",
    "SessionEnd",
}


@runs("claude-code-hooks")
def _claude_code_hooks(ex: Example, ws: Workspace) -> None:
    from handoff.container import Container

    hooks = json.loads(ex.code)["hooks"]
    assert set(hooks) <= CLAUDE_CODE_HOOK_EVENTS
    commands = {h["command"] for groups in hooks.values() for group in groups for h in group["hooks"]}
    assert commands == {"handoff hook claude-code"}
    transcript, session_id = claude_code_log(ws)
    payload = {"session_id": session_id, "transcript_path": str(transcript), "hook_event_name": "Stop"}
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", commands.pop()],
        input=json.dumps(payload),
        cwd=ws.root,
        env=ws.env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0 and time.monotonic() - started < 10, done.stderr

    async def entries() -> int:
        settings = Settings(database_url=SecretStr(ws.database_url))
        async with Container.build(settings) as container:
            return (await container.sessions.get(f"claude-code-{session_id}")).session.entry_count

    for pid in detached_workers(ws.home):  # the hook returned at once; its worker imports
        wait_for_exit(pid, timeout=60)
    assert anyio.run(entries) > 10


@runs("hook-by-hand")
def _hook_by_hand(ex: Example, ws: Workspace) -> None:
    claude_code_log(ws)
    run = ws.sh(ex.code)
    assert run.returncode == 0, run.output
    shown = json.loads(run.stdout)
    assert shown["session"]["session_key"] == "claude-code-manual-check"
    assert shown["session"]["entry_count"] > 10


@runs("watch-codex")
def _watch_codex(ex: Example, ws: Workspace) -> None:
    today = ws.sh("date +%Y/%m/%d").stdout.strip()
    lines = (CASES / "codex-wrapped-ghostty-font" / "source.jsonl").read_text().splitlines(keepends=True)
    rollout = ws.home / ".codex" / "sessions" / today / "rollout-2026-04-08T14-03-02-019d6d67.jsonl"
    rollout.parent.mkdir(parents=True)
    rollout.write_text("".join(lines[:30]))
    imported = re.compile(r": \+(\d+) -> my-task$")
    watcher = Background(ws, ex.code)
    try:
        watcher.wait_for(imported)
        with rollout.open("a") as handle:
            handle.write("".join(lines[30:]))
        watcher.wait_for(imported)  # it followed the file as it grew
    finally:
        watcher.stop()


@runs("error-forbidden")
def _error_forbidden(ex: Example, ws: Workspace) -> None:
    documented = json.loads(ex.code)["error"]
    with ws.server() as server:

        async def provoke() -> dict[str, Any]:
            with anyio.fail_after(60):
                async with Client(server.url) as client:
                    await call(client, "register_session", session_key="fix-login-bug", source_agent="claude-code")
                    await call(
                        client,
                        "request_handoff",
                        session_key="fix-login-bug",
                        target_agent="codex",
                        handoff_type="full_handoff",
                    )
                    refused = await client.call_tool(
                        "update_context",
                        {
                            "session_key": "fix-login-bug",
                            "context_type": "message",
                            "content": "one more thing",
                            "agent": "claude-code",
                        },
                    )
                    return tool_error(refused)

        assert anyio.run(provoke) == documented


# -- the test ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "backend"), example_params(AGENTS_GUIDE))
def test_example(name: str, backend: str, tmp_path: Path) -> None:
    run_example(name, backend, tmp_path)
