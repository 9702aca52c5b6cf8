"""Codex CLI rollouts (`~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl`), wrapped and legacy.

The current format wraps every line as `{timestamp, type, payload}`: `session_meta` (id, cwd, cli
version), `turn_context`, `response_item` (the model's input and output: messages, reasoning,
`function_call` / `function_call_output`, `custom_tool_call` such as apply_patch, ghost
snapshots), and `event_msg` (UI events that repeat messages, token counts, command ends). The
legacy format (2025) starts with a bare header `{id, timestamp, instructions}` followed by bare
items and `{"record_type": "state"}` lines. Arguments and outputs are JSON inside strings, or
plain text when the sandbox killed the call. Reasoning is encrypted or a summary: not imported.
Records have no ids of their own: function calls are keyed by call id, the rest by line number
(a rollout only ever grows at the end).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from handoff.capture.records import Captured, Position, ReadReport, clean_text, iter_jsonl, text_of

_INJECTED = re.compile(
    r"^\s*(?:<environment_context>|<user_instructions>|<permissions instructions>|<INSTRUCTIONS>|"
    r"# AGENTS\.md instructions|<collaboration_mode>|<turn_aborted>)",
)
_EXIT_TEXT = re.compile(r"^(?:Process exited with code|Exit code:)\s*(-?\d+)", re.M)
_SKIPPED_PAYLOADS = {"reasoning", "ghost_snapshot", "compacted", "web_search_call", "local_shell_call_output"}


def read_codex(path: Path, report: ReadReport, starts: dict[str, Position] | None = None) -> Iterator[Captured]:
    report.agent_name = "codex"
    calls: dict[str, str] = {}
    for line_no, record in iter_jsonl(path, (starts or {}).get(str(path), Position()), report):
        report.records += 1
        if "payload" in record and isinstance(record.get("payload"), dict):
            yield from _wrapped(record, line_no, calls, report)
        else:
            yield from _item(record, line_no, calls, report, legacy=True)


def _wrapped(record: dict[str, Any], line_no: int, calls: dict[str, str], report: ReadReport) -> Iterator[Captured]:
    kind = record.get("type")
    payload = record["payload"]
    if kind == "session_meta":
        if report.session_id is None and payload.get("id"):
            report.session_id = str(payload["id"])
        report.skipped += 1
        return
    if kind == "response_item":
        yield from _item(payload, line_no, calls, report, legacy=False)
        return
    if kind == "event_msg" and payload.get("type") == "turn_aborted":
        yield Captured(
            f"l{line_no}", "system", f"turn aborted: {payload.get('reason', 'interrupted')}", {"kind": "interrupted"}
        )
        return
    if kind == "compacted" and isinstance(payload.get("message"), str) and payload["message"].strip():
        yield Captured(f"l{line_no}", "system", clean_text(payload["message"]), {"kind": "compaction"})
        return
    # event_msg repeats messages and command ends already in response items; turn_context is settings.
    report.skipped += 1


def _item(
    item: dict[str, Any], line_no: int, calls: dict[str, str], report: ReadReport, *, legacy: bool
) -> Iterator[Captured]:
    kind = item.get("type")
    if legacy and "instructions" in item and "id" in item and kind is None:
        report.session_id = report.session_id or str(item["id"])
        text = item.get("instructions")
        if isinstance(text, str) and text.strip():
            yield Captured(f"l{line_no}", "system", clean_text(text), {"kind": "instructions"})
        return
    if item.get("record_type") == "state" or kind in _SKIPPED_PAYLOADS:
        report.skipped += 1
        return
    rid = f"l{line_no}"
    if kind == "message":
        role = str(item.get("role") or "")
        text = clean_text(text_of(item.get("content")))
        if not text.strip():
            report.skipped += 1
        elif role in ("developer", "system") or (role == "user" and _INJECTED.match(text)):
            yield Captured(rid, "system", text, {"kind": "injected_context", "role": role})
        elif role == "user":
            yield Captured(rid, "message", text, {"role": "user"})
        else:
            yield Captured(rid, "message", text, {"role": "assistant"})
        return
    if kind in ("function_call", "custom_tool_call", "local_shell_call"):
        call_id = str(item.get("call_id") or item.get("id") or rid)
        name = str(item.get("name") or ("shell" if kind == "local_shell_call" else "tool"))
        calls[call_id] = name
        yield _call(f"call:{call_id}", name, call_id, item)
        return
    if kind in ("function_call_output", "custom_tool_call_output"):
        call_id = str(item.get("call_id") or rid)
        yield _output(f"out:{call_id}", calls.get(call_id, "tool"), call_id, item.get("output"))
        return
    report.skipped += 1


def _call(rid: str, name: str, call_id: str, item: dict[str, Any]) -> Captured:
    raw = item.get("arguments", item.get("input", item.get("action")))
    data: dict[str, Any]
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
            data = parsed if isinstance(parsed, dict) else {"input": raw}
        except ValueError:
            data = {"input": raw}  # apply_patch sends the patch as plain text
    elif isinstance(raw, dict):
        data = raw
    else:
        data = {}
    meta: dict[str, Any] = {"tool": name, "tool_use_id": call_id, "phase": "call", "input": _small(data)}
    command = data.get("command", data.get("cmd"))
    if isinstance(command, list) and command:
        words = [str(w) for w in command]
        command = words[-1] if len(words) >= 3 and words[1] in ("-lc", "-c") else " ".join(words)
    if isinstance(command, str) and command.strip():
        return Captured(rid, "tool_call", clean_text(f"$ {command.strip()}"), meta)
    patch = data.get("input") if isinstance(data.get("input"), str) else None
    if patch and "*** Begin Patch" in patch[:200]:
        return Captured(rid, "tool_call", clean_text(f"{name}\n{patch[:50_000]}"), meta)
    return Captured(rid, "tool_call", clean_text(f"{name} {json.dumps(data, ensure_ascii=False)[:20_000]}"), meta)


def _output(rid: str, name: str, call_id: str, raw: Any) -> Captured:
    meta: dict[str, Any] = {"tool": name, "tool_use_id": call_id, "phase": "result"}
    text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False) if raw is not None else ""
    if isinstance(raw, str) and raw.lstrip().startswith("{"):
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and "output" in parsed:
            text = str(parsed.get("output") or "")
            info = parsed.get("metadata")
            if isinstance(info, dict) and isinstance(info.get("exit_code"), int):
                meta["exit_code"] = info["exit_code"]
    if "exit_code" not in meta and (match := _EXIT_TEXT.search(text[:2000])):
        meta["exit_code"] = int(match.group(1))
    if isinstance(meta.get("exit_code"), int) and meta["exit_code"] != 0:
        meta["is_error"] = True
    return Captured(rid, "tool_call", clean_text(text), meta)


def _small(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in list(data.items())[:30]:
        out[key] = value[:2000] + "…" if isinstance(value, str) and len(value) > 2000 else value
    encoded = json.dumps(out, ensure_ascii=False)
    if len(encoded) > 16_000:
        return {"truncated": encoded[:16_000]}
    cleaned: dict[str, Any] = json.loads(clean_text(encoded))
    return cleaned
