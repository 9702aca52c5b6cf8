"""Claude Code session logs (`~/.claude/projects/<project>/<session>.jsonl`), versions 1.0 to 2.1.

One JSON record per line. `user` and `assistant` records carry an API message; an assistant reply
is split over several records sharing `message.id` (one content block each). Tool calls are
`tool_use` blocks answered by `tool_result` blocks in the next user record, with the tool's own
view in `toolUseResult` (a string, or an object whose keys depend on the tool). Besides those:
`summary` records (titles; `leafUuid` may point into another conversation), compaction summaries
(`isCompactSummary`), caveats and slash-command echoes (`isMeta`, `<command-name>`), interruptions,
IDE context blocks, `system` records (hooks, durations, compaction boundaries), and bookkeeping
(`file-history-snapshot`, `progress`, `queue-operation`, `permission-mode`, `last-prompt`,
`attachment`). Subagents write their own files: `<session>/subagents/agent-*.jsonl` (2.x) or
sibling `agent-*.jsonl` files (1.0), merged here by timestamp.
"""

from __future__ import annotations

import difflib
import heapq
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from handoff.capture.records import Captured, Position, ReadReport, clean_text, iter_jsonl, text_of

_SKIPPED_TYPES = {
    "file-history-snapshot",
    "progress",
    "queue-operation",
    "permission-mode",
    "last-prompt",
    "attachment",
}
_EDIT_TOOLS = {"Edit": "edited", "MultiEdit": "edited", "Write": "written", "NotebookEdit": "edited"}
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)
_IDE = re.compile(r"<(ide_opened_file|ide_selection|ide_diagnostics)>(.*?)</\1>", re.S)
_COMMAND = re.compile(r"<command-name>(.*?)</command-name>", re.S)
_COMMAND_ARGS = re.compile(r"<command-args>(.*?)</command-args>", re.S)
_LOCAL_STDOUT = re.compile(r"<local-command-(?:stdout|stderr)>(.*?)</local-command-(?:stdout|stderr)>", re.S)
_BASH_INPUT = re.compile(r"<bash-input>(.*?)</bash-input>", re.S)
_BASH_OUTPUT = re.compile(r"<bash-(?:stdout|stderr)>(.*?)</bash-(?:stdout|stderr)>", re.S)
_INTERRUPTED = re.compile(r"^\[Request interrupted by user[^\]]*\]")
_REJECTED = "The user doesn't want to proceed with this tool use"
_STRUCTURED_TOOLS = {"TodoWrite", "TaskCreate", "TaskUpdate", "ExitPlanMode", "exit_plan_mode", "Task", "Agent"}


def read_claude_code(path: Path, report: ReadReport, starts: dict[str, Position] | None = None) -> Iterator[Captured]:
    report.agent_name = "claude-code"
    sources: list[tuple[Path, str | None]] = [(path, None)]
    sources.extend((sub, sub.stem) for sub in _subagent_files(path))
    starts = starts or {}
    streams = [_records(p, agent_id, report, starts.get(str(p), Position())) for p, agent_id in sources]
    merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda r: r[0])
    state = _State()
    for _, line_no, record, agent_id in merged:
        yield from _record(record, line_no, agent_id, state, report)


def _subagent_files(path: Path) -> list[Path]:
    found = sorted((path.parent / path.stem / "subagents").glob("agent-*.jsonl"))
    if not path.stem.startswith("agent-"):
        session_id = _first_session_id(path)
        for sibling in sorted(path.parent.glob("agent-*.jsonl")):
            if session_id and _first_session_id(sibling) == session_id:
                found.append(sibling)
    return found


def _first_session_id(path: Path) -> str | None:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            for _, line in zip(range(20), handle, strict=False):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("sessionId"):
                    return str(record["sessionId"])
    except OSError:
        return None
    return None


def _records(
    path: Path, agent_id: str | None, report: ReadReport, start: Position
) -> Iterator[tuple[str, int, dict[str, Any], str | None]]:
    """(timestamp, line, record, subagent) for each parseable line; bad lines are reported."""
    last_ts = ""
    for line_no, record in iter_jsonl(path, start, report):
        stamp = record.get("timestamp")
        last_ts = stamp if isinstance(stamp, str) and stamp >= last_ts else last_ts
        yield last_ts, line_no, record, agent_id


class _State:
    def __init__(self) -> None:
        self.tool_names: dict[str, str] = {}
        self.seen_blocks: set[str] = set()
        self.summaries: set[str] = set()


def _record(
    record: dict[str, Any], line_no: int, agent_id: str | None, state: _State, report: ReadReport
) -> Iterator[Captured]:
    report.records += 1
    kind = record.get("type")
    if record.get("sessionId") and report.session_id is None and agent_id is None:
        report.session_id = str(record["sessionId"])
    uuid = str(record.get("uuid") or f"line{line_no}")
    if agent_id:
        uuid = f"{agent_id}:{uuid}"
    extra: dict[str, Any] = {"subagent": agent_id} if agent_id else {}
    if record.get("isSidechain") is True and not agent_id:
        extra = {"subagent": "sidechain"}  # 1.0.x wrote subagent turns into the main file
    cwd = record.get("cwd") if isinstance(record.get("cwd"), str) else None
    if kind == "summary":
        text = str(record.get("summary", "")).strip()
        key = str(record.get("leafUuid") or text)
        if text and key not in state.summaries:
            state.summaries.add(key)
            yield Captured(f"summary:{key}", "system", f"Conversation title: {clean_text(text)}", {"kind": "title"})
        else:
            report.skipped += 1
        return
    if kind in _SKIPPED_TYPES:
        report.skipped += 1
        return
    if kind == "system":
        yield from _system(record, uuid, report, extra)
        return
    message = record.get("message")
    if kind not in ("user", "assistant") or not isinstance(message, dict):
        report.skipped += 1
        return
    if kind == "assistant":
        yield from _assistant(message, uuid, state, report, extra, cwd)
    else:
        yield from _user(record, message, uuid, state, report, extra)


def _system(record: dict[str, Any], uuid: str, report: ReadReport, extra: dict[str, Any]) -> Iterator[Captured]:
    subtype = str(record.get("subtype") or "")
    content = record.get("content")
    if subtype == "compact_boundary":
        yield Captured(
            uuid,
            "system",
            "Conversation compacted here (earlier turns summarised).",
            {"kind": "compact_boundary", **extra},
        )
    elif subtype in ("informational", "api_error", "local_command") and isinstance(content, str) and content.strip():
        yield Captured(uuid, "system", clean_text(content[:4000]), {"kind": subtype, **extra})
    else:
        report.skipped += 1  # hook summaries, turn durations: bookkeeping


def _assistant(
    message: dict[str, Any], uuid: str, state: _State, report: ReadReport, extra: dict[str, Any], cwd: str | None
) -> Iterator[Captured]:
    content = message.get("content")
    message_id = str(message.get("id") or uuid)
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
    for index, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        btype = block.get("type")
        rid = f"{uuid}:{index}"
        if btype == "text":
            text = str(block.get("text") or "")
            key = f"{message_id}:text:{hash(text)}"
            if not text.strip() or key in state.seen_blocks:
                continue
            state.seen_blocks.add(key)
            yield Captured(rid, "message", clean_text(text), {"role": "assistant", **extra})
        elif btype == "tool_use":
            call_id = str(block.get("id") or rid)
            if call_id in state.seen_blocks:
                continue
            state.seen_blocks.add(call_id)
            name = str(block.get("name") or "tool")
            state.tool_names[call_id] = name
            data: dict[str, Any] = block["input"] if isinstance(block.get("input"), dict) else {}
            yield _tool_use(rid, name, call_id, data, extra, cwd)
        else:
            report.skipped += 0  # thinking / redacted_thinking: the model's scratchpad, not content


def _relative(path: str, cwd: str | None) -> str:
    """Paths under the session's working directory, as the project knows them."""
    if cwd and path.startswith(cwd.rstrip("/") + "/"):
        return path[len(cwd.rstrip("/")) + 1 :]
    return path


def _tool_use(
    rid: str, name: str, call_id: str, data: dict[str, Any], extra: dict[str, Any], cwd: str | None
) -> Captured:
    # Plans and to-do lists keep their whole input (the digest reads their structure); other tools
    # keep short fields only: the content already holds the command, the diff or the text.
    limit = 20_000 if name in _STRUCTURED_TOOLS else 300
    meta: dict[str, Any] = {
        "tool": name,
        "tool_use_id": call_id,
        "phase": "call",
        "input": _small(data, limit),
        **extra,
    }
    path = data.get("file_path") or data.get("notebook_path")
    if name in _EDIT_TOOLS and isinstance(path, str):
        path = _relative(path, cwd)
        meta.update({"path": path, "action": "created" if name == "Write" else _EDIT_TOOLS[name]})
        return Captured(rid, "file", clean_text(_edit_text(name, data)), meta)
    if name == "Bash" and isinstance(data.get("command"), str):
        described = f"  # {data['description']}" if isinstance(data.get("description"), str) else ""
        return Captured(rid, "tool_call", clean_text(f"$ {data['command']}{described}"), meta)
    if name in ("ExitPlanMode", "exit_plan_mode") and isinstance(data.get("plan"), str):
        return Captured(rid, "tool_call", clean_text(f"{name}: plan for approval\n{data['plan']}"), meta)
    return Captured(rid, "tool_call", clean_text(f"{name} {json.dumps(data, ensure_ascii=False)[:20_000]}"), meta)


def _edit_text(name: str, data: dict[str, Any]) -> str:
    path = data.get("file_path") or data.get("notebook_path")
    if name == "Write":
        return f"Write {path}\n{str(data.get('content', ''))[:20_000]}"
    if name == "MultiEdit" and isinstance(data.get("edits"), list):
        parts = [f"MultiEdit {path}"]
        parts.extend(
            _diff(str(edit.get("old_string", "")), str(edit.get("new_string", "")))
            for edit in data["edits"][:20]
            if isinstance(edit, dict)
        )
        return "\n".join(parts)
    if name == "NotebookEdit":
        cell = data.get("cell_id", data.get("cell_number", ""))
        return f"NotebookEdit {path} cell {cell}\n{str(data.get('new_source', ''))[:20_000]}"
    return f"Edit {path}\n" + _diff(str(data.get("old_string", "")), str(data.get("new_string", "")))


def _diff(old: str, new: str) -> str:
    """An Edit as a unified diff: what a reader (and the digest) expects a change to look like."""
    lines = difflib.unified_diff(old[:20_000].splitlines(), new[:20_000].splitlines(), "before", "after", lineterm="")
    return "\n".join(list(lines)[:400])


def _small(data: dict[str, Any], limit: int) -> dict[str, Any]:
    """Tool input for metadata: long strings cut, so a Write of a big file stays small metadata."""
    out: dict[str, Any] = {}
    for key, value in list(data.items())[:30]:
        if isinstance(value, str) and len(value) > limit:
            out[key] = value[:limit] + "…"
        elif isinstance(value, list | dict):
            encoded = json.dumps(value, ensure_ascii=False)
            out[key] = value if len(encoded) <= limit else encoded[:limit] + "…"
        else:
            out[key] = value
    cleaned: dict[str, Any] = json.loads(clean_text(json.dumps(out, ensure_ascii=False)))
    return cleaned


def _user(
    record: dict[str, Any], message: dict[str, Any], uuid: str, state: _State, report: ReadReport, extra: dict[str, Any]
) -> Iterator[Captured]:
    content = message.get("content")
    if record.get("isCompactSummary"):
        yield Captured(uuid, "system", clean_text(text_of(content)), {"kind": "compaction", **extra})
        return
    if record.get("isMeta"):
        report.skipped += 1  # caveats and skill preambles the harness inserted
        return
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
    texts: list[str] = []
    for index, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_result":
            yield _tool_result(f"{uuid}:{index}", block, record.get("toolUseResult"), state, extra)
        elif block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "image":
            texts.append("[image]")
    if texts:
        yield from _user_text(uuid, "\n".join(texts), extra)


def _user_text(uuid: str, text: str, extra: dict[str, Any]) -> Iterator[Captured]:
    text = _REMINDER.sub("", text).strip()
    for match in _IDE.finditer(text):
        yield Captured(
            f"{uuid}:ide",
            "system",
            clean_text(" ".join(match.group(2).split())[:2000]),
            {"kind": match.group(1), **extra},
        )
    text = _IDE.sub("", text).strip()
    if not text:
        return
    role = "agent" if extra.get("subagent") else "user"
    if command := _COMMAND.search(text):
        args = _COMMAND_ARGS.search(text)
        arguments = args.group(1).strip() if args else ""
        line = clean_text(f"{command.group(1).strip()} {arguments}".strip())
        if arguments:  # "/orchestrator create a TODO app": a request in the user's words
            yield Captured(uuid, "message", line, {"role": role, "kind": "slash_command", **extra})
        else:
            yield Captured(uuid, "system", line, {"kind": "slash_command", **extra})
        return
    if stdout := _LOCAL_STDOUT.search(text):
        body = stdout.group(1).strip()
        if body:
            yield Captured(uuid, "system", clean_text(body[:4000]), {"kind": "local_command_output", **extra})
        return
    if bash := _BASH_INPUT.search(text):
        yield Captured(
            uuid,
            "tool_call",
            clean_text(f"$ {bash.group(1).strip()}"),
            {"tool": "Bash", "phase": "call", "by": "user", **extra},
        )
        return
    if _BASH_OUTPUT.search(text):
        output = "\n".join(m.group(1) for m in _BASH_OUTPUT.finditer(text)).strip()
        yield Captured(
            uuid, "tool_call", clean_text(output), {"tool": "Bash", "phase": "result", "by": "user", **extra}
        )
        return
    if _INTERRUPTED.match(text):
        yield Captured(uuid, "system", text[:200], {"kind": "interrupted", **extra})
        return
    if text.startswith("<task-notification>"):
        yield Captured(uuid, "system", clean_text(text[:8000]), {"kind": "task_notification", **extra})
        return
    yield Captured(uuid, "message", clean_text(text), {"role": role, **extra})


def _tool_result(rid: str, block: dict[str, Any], result: Any, state: _State, extra: dict[str, Any]) -> Captured:
    call_id = str(block.get("tool_use_id") or "")
    name = state.tool_names.get(call_id, "tool")
    text = text_of(block.get("content"))
    if isinstance(result, dict) and name == "Bash" and not text.strip():
        text = "\n".join(str(result.get(k) or "") for k in ("stdout", "stderr")).strip()
    meta: dict[str, Any] = {"tool": name, "tool_use_id": call_id, "phase": "result", **extra}
    if block.get("is_error") is True:
        meta["is_error"] = True
        if text.startswith(_REJECTED):
            meta["rejected_by_user"] = True
    if isinstance(result, dict):
        if isinstance(result.get("exitCode"), int):
            meta["exit_code"] = result["exitCode"]
        if result.get("interrupted") is True:
            meta["interrupted"] = True
        if isinstance(result.get("filePath"), str):
            meta["path"] = result["filePath"]
    return Captured(rid, "tool_call", clean_text(text), meta)
