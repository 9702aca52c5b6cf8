"""mini-swe-agent and SWE-agent trajectories (`.traj.json`, `.traj`).

mini-swe-agent 1.x writes the command as a ```bash block in the assistant's text and the answer as
a "user" message (`<returncode>1</returncode><output>…`); 2.x uses tool calls and `tool` messages
with `extra.returncode` (a string in 2.2, an int in 2.3) and ends with a `role: "exit"` message.
SWE-agent keeps the chat in `history` (with a demonstration marked `is_demo` to leave out) and the
executed steps in `trajectory`. Messages have no ids, so a record's id is its position: the files
are rewritten whole as the run goes, but only ever grow at the end.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from handoff.capture.records import Captured, ReadReport, clean_text, text_of

_RETURNCODE = re.compile(r"<returncode>\s*(-?\d+)\s*</returncode>")
_OPEN_FILE = re.compile(r"\(Open file: ([^)\n]+)\)")
_SWE_CREATE = re.compile(r"^create\s+(\S+)")
_SWE_EDIT = re.compile(r"^edit\s+\d+:\d+")


def read_trajectory(data: Any, report: ReadReport) -> Iterator[Captured]:
    if isinstance(data, list):
        report.format = "mini-swe-agent"
        yield from _mini_messages(data, report)
        return
    if not isinstance(data, dict):
        report.problem(1, "a trajectory is a JSON object or a list of messages")
        return
    info: dict[str, Any] = data["info"] if isinstance(data.get("info"), dict) else {}
    report.session_id = str(data.get("instance_id") or "") or None
    if isinstance(data.get("messages"), list):
        report.format = "mini-swe-agent"
        report.agent_name = "mini-swe-agent"
        yield from _mini_messages(data["messages"], report)
        if info.get("exit_status") and not any(
            isinstance(m, dict) and m.get("role") == "exit" for m in data["messages"]
        ):
            yield Captured("info-exit", "system", f"run ended: {info['exit_status']}", {"kind": "exit"})
        return
    if isinstance(data.get("history"), list):
        report.format = "swe-agent"
        report.agent_name = "swe-agent"
        yield from _swe_agent_history(data["history"], report)
        return
    report.problem(1, "neither `messages` (mini-swe-agent) nor `history` (SWE-agent) in this trajectory")


def _mini_messages(messages: list[Any], report: ReadReport) -> Iterator[Captured]:
    for index, message in enumerate(messages):
        report.records += 1
        if not isinstance(message, dict):
            report.problem(index + 1, f"message {index} is not an object")
            continue
        role = str(message.get("role", ""))
        text = clean_text(text_of(message.get("content")))
        extra: dict[str, Any] = message["extra"] if isinstance(message.get("extra"), dict) else {}
        rid = f"m{index}"
        if role == "system":
            yield Captured(rid, "system", text, {"role": "system"})
        elif role == "assistant":
            if text.strip():
                yield Captured(rid, "message", text, {"role": "assistant"})
            for call_index, call in enumerate(message.get("tool_calls") or []):
                yield from _tool_call(f"{rid}-call{call_index}", call)
        elif role == "tool":
            yield Captured(rid, "tool_call", text, _output_meta(text, extra, message.get("tool_call_id")))
        elif role == "user":
            if _RETURNCODE.search(text[:500]) or text.lstrip().startswith(("<output", "<warning")):
                yield Captured(rid, "tool_call", text, _output_meta(text, extra, None))
            elif index > 1 and extra.get("interrupt_type"):
                yield Captured(rid, "system", text, {"role": "environment", "kind": str(extra["interrupt_type"])})
            else:
                yield Captured(rid, "message", text, {"role": "user"})
        elif role == "exit":
            status = extra.get("exit_status") or "exit"
            yield Captured(
                rid, "system", f"run ended: {status}\n{text[:4000]}", {"kind": "exit", "status": str(status)}
            )
        elif text.strip():
            yield Captured(rid, "system", text, {"role": role or "unknown"})
        else:
            report.skipped += 1


def _tool_call(rid: str, call: Any) -> Iterator[Captured]:
    if not isinstance(call, dict):
        return
    function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
    name = str(function.get("name") or call.get("name") or "bash")
    arguments = function.get("arguments", call.get("arguments"))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = {"command": arguments}
    if not isinstance(arguments, dict):
        arguments = {}
    command = arguments.get("command") if isinstance(arguments.get("command"), str) else None
    content = f"$ {command}" if command else json.dumps(arguments, ensure_ascii=False)
    meta: dict[str, Any] = {"tool": name, "input": arguments, "phase": "call"}
    if call.get("id"):
        meta["tool_use_id"] = str(call["id"])
    yield Captured(rid, "tool_call", clean_text(content), meta)


def _output_meta(text: str, extra: dict[str, Any], call_id: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"tool": "bash", "phase": "result", "role": "tool"}
    code = extra.get("returncode")
    if isinstance(code, str) and code.lstrip("-").isdigit():
        code = int(code)
    if not isinstance(code, int):
        match = _RETURNCODE.search(text[:2000])
        code = int(match.group(1)) if match else None
    if code is not None:
        meta["exit_code"] = code
    if call_id:
        meta["tool_use_id"] = str(call_id)
    return meta


def _swe_agent_history(history: list[Any], report: ReadReport) -> Iterator[Captured]:
    open_file: str | None = None
    pending_path: str | None = None
    for index, message in enumerate(history):
        report.records += 1
        if not isinstance(message, dict):
            report.problem(index + 1, f"history item {index} is not an object")
            continue
        if message.get("is_demo"):
            report.skipped += 1
            continue
        role = str(message.get("role", ""))
        text = clean_text(text_of(message.get("content")))
        rid = f"h{index}"
        if role == "system":
            yield Captured(rid, "system", text, {"role": "system"})
        elif role == "assistant":
            thought = message.get("thought")
            action = message.get("action")
            prose = thought if isinstance(thought, str) and thought.strip() else text
            if prose.strip():
                yield Captured(rid, "message", clean_text(prose), {"role": "assistant"})
            if isinstance(action, str) and action.strip():
                first = action.strip().splitlines()[0]
                meta: dict[str, Any] = {"tool": "swe-agent", "command": first[:300], "phase": "call"}
                pending_path = None
                if match := _SWE_CREATE.match(first):
                    pending_path = match.group(1)
                    yield Captured(f"{rid}-file", "file", "", {"path": pending_path, "action": "created"})
                elif _SWE_EDIT.match(first) and open_file:
                    pending_path = open_file
                    meta["path"] = open_file
                yield Captured(f"{rid}-call", "tool_call", clean_text("$ " + action.strip()), meta)
        elif role in ("user", "tool"):
            found = _OPEN_FILE.search(text[-600:])
            if found and found.group(1) != "n/a":
                open_file = found.group(1)
            if index > 0 and _is_observation(history, index):
                meta = {"tool": "swe-agent", "phase": "result", "role": "tool"}
                if (
                    pending_path
                    and "NOT been applied" not in text
                    and "edit" in str(history[index - 1].get("action", ""))[:10]
                ):
                    yield Captured(f"{rid}-file", "file", "", {"path": pending_path, "action": "edited"})
                if "Your changes have NOT been applied" in text:
                    meta["is_error"] = True
                yield Captured(rid, "tool_call", text, meta)
            else:
                yield Captured(rid, "message", text, {"role": "user"})
        else:
            report.skipped += 1


def _is_observation(history: list[Any], index: int) -> bool:
    previous = history[index - 1]
    return isinstance(previous, dict) and previous.get("role") == "assistant" and bool(previous.get("action"))
