"""The newest history, a line per step: a call and its answer share a line, a run of reads shares one,
a message is cut to its most telling sentences, an output to the lines that say how it ended."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from handoff.domain.changes import change_lines
from handoff.domain.failures import last_error
from handoff.domain.models import ContextType, EntryExcerpt
from handoff.domain.prose import clip, score_sentence, sentences
from handoff.domain.tooluse import is_noise_line, is_read_only, looks_like_tool_output, read_tool_call

Lines = list[tuple[int, str | Callable[[], str]]]
_TAIL_OUTPUT_LINES = 6


@dataclass(frozen=True, slots=True)
class Widths:
    """How long one item may be: small budgets get more, shorter items (more facts per token)."""

    sentence: int
    request: int
    task: int
    tail_head: int
    tail_output: int
    command: int
    gist: int

    @classmethod
    def for_budget(cls, budget: int) -> Widths:
        scale = min(1.0, max(0.25, budget / 4000))
        return cls(
            sentence=int(400 * scale),
            request=int(1000 * scale),
            task=int(6000 * max(scale, 0.3) ** 2),  # the first request keeps its room at any budget
            tail_head=int(700 * scale),
            tail_output=int(500 * scale),
            command=int(240 * max(scale, 0.6)),
            gist=int(160 * max(scale, 0.6)),
        )


def tail_lines(tail: Sequence[EntryExcerpt], w: Widths) -> Lines:
    """The newest entries, newest first (priority), each cut to what a reader needs.

    A tool call and the output that answers it share one line, so a command costs one line, and a
    run of commands that only looked (cat, grep, Read) shares one line too: what the agent read is
    worth less than what it said and changed.
    """
    ordered = sorted(tail, key=lambda e: e.sequence_number)
    answered = _pair_calls(ordered)
    skip = {r.sequence_number for r in answered.values()}
    units: list[tuple[EntryExcerpt, EntryExcerpt | None, str | None]] = []
    for entry in ordered:
        if entry.sequence_number not in skip:
            result = answered.get(entry.sequence_number)
            units.append((entry, result, _looking(entry, result)))
    groups: list[list[tuple[EntryExcerpt, EntryExcerpt | None, str | None]]] = []
    for unit in units:
        if unit[2] is not None and groups and groups[-1][-1][2] is not None:
            groups[-1].append(unit)
        else:
            groups.append([unit])
    lines: Lines = []
    details: Lines = []
    for group in reversed(groups):
        entry, result, _ = group[0]
        if len(group) == 1:
            lines.append((entry.sequence_number, _deferred(entry, result, w)))
        else:
            lines.append((entry.sequence_number, _looked_line(group, w)))
            # What those reads showed, last: only a budget with room to spare gets that far.
            details.extend((e.sequence_number, _deferred(e, r, w, detail=True)) for e, r, _ in reversed(group))
    return lines + details


def _pair_calls(ordered: list[EntryExcerpt]) -> dict[int, EntryExcerpt]:
    """call seq → the entry that answers it: by tool_use_id when both carry one, else the next entry."""
    answered: dict[int, EntryExcerpt] = {}
    waiting: dict[str, EntryExcerpt] = {}
    used: set[int] = set()
    for entry in ordered:
        call_id = entry.metadata.get("tool_use_id")
        if _is_call(entry):
            if isinstance(call_id, str) and call_id:
                waiting[call_id] = entry
            continue
        if isinstance(call_id, str) and call_id in waiting:
            call = waiting.pop(call_id)
            if _answers(entry, call):
                answered[call.sequence_number] = entry
                used.add(entry.sequence_number)
    for call, result in itertools.pairwise(ordered):
        if (
            call.sequence_number not in answered
            and result.sequence_number not in used
            and _is_call(call)
            and _answers(result, call)
        ):
            answered[call.sequence_number] = result
            used.add(result.sequence_number)
    return answered


_LOOKING_TOOLS = frozenset(
    ["read", "grep", "glob", "ls", "view", "find_file", "search_dir", "search_file", "open", "read_file", "list_dir"]
)


def _looking(entry: EntryExcerpt, result: EntryExcerpt | None) -> str | None:
    """The command of a call that only looked and did not fail, else None."""
    if entry.context_type is not ContextType.TOOL_CALL or result is None or not _is_call(entry):
        return None
    use = read_tool_call(entry.head, entry.metadata)
    answer = read_tool_call(result.head + (("\n…\n" + result.tail) if result.tail else ""), result.metadata)
    if answer.failed:
        return None
    if use.command and is_read_only(use.command):
        return use.command
    name = (use.tool or "").lower()
    if name in _LOOKING_TOOLS and not use.command:
        target = next((p for p, _ in use.files), "") or _input_text(use.input or {}, 80)
        return f"{use.tool} {target}".strip()
    return None


def _looked_line(group: list[tuple[EntryExcerpt, EntryExcerpt | None, str | None]], w: Widths) -> str:
    first = group[0][0].sequence_number
    last_entry, last_result, _ = group[-1]
    last = (last_result or last_entry).sequence_number
    shown: list[str] = []
    for _, _, command in group:
        text = clip(" ".join(str(command).split()), 70)
        if text not in shown:
            shown.append(text)
    listed = " · ".join(f"`{c}`" for c in shown[:5]) + (" …" if len(shown) > 5 else "")
    return f"- #{first}-{last} looked ({len(group)} read-only calls): {listed}"


def _deferred(
    entry: EntryExcerpt, result: EntryExcerpt | None, w: Widths, *, detail: bool = False
) -> Callable[[], str]:
    return lambda: _excerpt_line(entry, result, w, detail=detail)


def _is_call(entry: EntryExcerpt) -> bool:
    meta = entry.metadata
    return entry.context_type in (ContextType.TOOL_CALL, ContextType.FILE) and (
        meta.get("phase") == "call"
        or (isinstance(meta.get("input"), dict) and "output" not in meta)
        or (
            entry.context_type is ContextType.TOOL_CALL
            and entry.head.startswith("$ ")
            and (
                "\n" not in entry.head.strip()
                or "<<" in entry.head.split("\n", 1)[0]
                or "*** Begin Patch" in entry.head[:400]
            )
        )
    )


def _answers(result: EntryExcerpt, call: EntryExcerpt) -> bool:
    if result.context_type is ContextType.MESSAGE:
        role = str(result.metadata.get("role") or "").lower()
        return role in ("user", "tool") and looks_like_tool_output(result.head)
    if result.context_type is not ContextType.TOOL_CALL or _is_call(result):
        return False
    call_id, result_id = call.metadata.get("tool_use_id"), result.metadata.get("tool_use_id")
    return call_id == result_id if call_id and result_id else True


def _excerpt_line(entry: EntryExcerpt, result: EntryExcerpt | None, w: Widths, *, detail: bool = False) -> str:
    meta = entry.metadata
    seq = entry.sequence_number
    body = entry.head + (("\n…\n" + entry.tail) if entry.tail else "")
    span = f"#{seq}" if result is None else f"#{seq}-{result.sequence_number}"
    if entry.context_type is ContextType.MESSAGE:
        role = str(meta.get("role") or entry.agent)
        if role.lower() in ("user", "human", "tool") and looks_like_tool_output(body):
            return f"- {span} output: {_output_excerpt(body, w.tail_output)}"
        return f"- {span} {role}: {_message_gist(body, role, w.tail_head)}"
    if entry.context_type in (ContextType.TOOL_CALL, ContextType.FILE) and (result is not None or _is_call(entry)):
        use = read_tool_call(body, meta)
        name = use.tool or "tool"
        changes = change_lines(use, w.tail_output) if entry.context_type is ContextType.TOOL_CALL else ""
        if entry.context_type is ContextType.FILE:
            what = f"`{meta.get('path', '')}` ({meta.get('action', 'changed')})"
        elif use.command:
            what = f"`{clip(use.command, w.command if not changes else 80)}`"
        elif changes and use.files:
            what = f"`{use.files[0][0]}`"
        else:
            what = _input_text(use.input, w.tail_output) if use.input else clip(" ".join(entry.head.split()), w.command)
        if changes:
            what += f" ⟶ {changes}"
        outcome = ""
        if result is not None:
            answer = read_tool_call(result.head + (("\n…\n" + result.tail) if result.tail else ""), result.metadata)
            if answer.exit_code is not None:
                outcome = f" → exit {answer.exit_code}"
            elif answer.failed:
                outcome = " → error"
            quiet = not detail and ((use.command and is_read_only(use.command)) or _looking(entry, result) is not None)
            out = "" if quiet else _output_summary(answer, w.tail_output)
            if out:
                outcome += f": {out}"
        return f"- {span} {name} {what}{outcome}"
    if entry.context_type is ContextType.TOOL_CALL:
        use = read_tool_call(body, meta)
        status = "" if use.exit_code is None else f" → exit {use.exit_code}"
        if use.failed and use.exit_code is None:
            status = " → error"
        what = f" `{clip(use.command, w.command)}`" if use.command else ""
        out = _output_excerpt(use.output, w.tail_output) if use.output else ""
        return f"- {span} {use.tool or 'output'}{what}{status}" + (f": {out}" if out else "")
    if entry.context_type is ContextType.FILE:
        path = meta.get("path") or meta.get("file_path") or "(file)"
        action = meta.get("action") or "touched"
        return f"- {span} file `{path}` {action}"
    return f"- {span} system: {clip(' '.join(entry.head.split()), 300)}"


def _message_gist(text: str, role: str, limit: int) -> str:
    """A message in a line: its most telling sentences in their order (narration left out)."""
    flat = " ".join(text.split())
    if len(flat) <= 2 * limit:
        return clip(flat, limit)
    units = sentences(text)[:40]
    scored = []
    for index, unit in enumerate(units):
        found = score_sentence(unit, "user" if role in ("user", "human") else "assistant")
        scored.append((found.score if found else 0.0, index, unit))
    picked: list[tuple[int, str]] = []
    size = 0
    for score, index, unit in sorted(scored, key=lambda t: (-t[0], t[1])):
        if score <= 0 and picked:
            break
        if size + len(unit) + 1 > limit and picked:
            continue
        picked.append((index, unit))
        size += len(unit) + 1
    return clip(" … ".join(unit for _, unit in sorted(picked)), limit) if picked else clip(flat, limit)


def _output_summary(use: Any, limit: int) -> str:
    """What a command printed, in a line: the error if it failed, else its last telling line."""
    output = use.output or ""
    error = last_error(output) if use.failed else None
    excerpt = _output_excerpt(output, limit)
    if error and error not in excerpt:
        return clip(f"{error} ⏎ {excerpt}", limit)
    return excerpt


def _input_text(data: dict[str, Any], limit: int) -> str:
    """A tool's input in a line: its text fields (a subagent's prompt, a query), not its JSON."""
    parts = []
    for key, value in data.items():
        if isinstance(value, str) and value.strip():
            parts.append(f"{key}: {' '.join(value.split())}")
        elif isinstance(value, int | float | bool):
            parts.append(f"{key}={value}")
    return clip("; ".join(parts), limit) if parts else clip(json.dumps(data, ensure_ascii=False), limit)


def _output_excerpt(output: str | None, limit: int = 500) -> str:
    if not output:
        return ""
    lines = [line.rstrip() for line in output.strip().splitlines() if line.strip() and not is_noise_line(line)]
    if len(lines) > _TAIL_OUTPUT_LINES:
        lines = [*lines[:2], "…", *lines[-(_TAIL_OUTPUT_LINES - 2) :]]
    return clip(" ⏎ ".join(line.strip() for line in lines), limit)


_NOT_THE_AGENT = frozenset(["user", "human", "tool", "function", "ipython", "observation", "system", "developer"])
_ACCOUNT_MIN_CHARS = 200  # of prose: shorter messages are narration ("Now let me run the tests.")
_FENCED = re.compile(r"```.*?(?:```|\Z)", re.S)
_RULE = frozenset("-|: =*#_")


def latest_account(tail: Sequence[EntryExcerpt], w: Widths) -> tuple[int | None, Lines]:
    """The agent's newest message of substance, quoted a line per paragraph, list item or table row.

    Agents close a stretch of work by saying where it stands (a summary, a table of what was
    settled, the root cause and the fix): often the best account of the session there is, which
    the recent-activity view would cut to a few sentences. Lines are offered in the message's order,
    so a budget that cannot take it whole takes its opening; fenced code is left out.
    """
    for entry in sorted(tail, key=lambda e: -e.sequence_number):
        if entry.context_type is not ContextType.MESSAGE:
            continue
        role = str(entry.metadata.get("role") or "").strip().lower()
        if role in _NOT_THE_AGENT or (not role and entry.agent.lower() in ("user", "human")):
            continue
        if entry.metadata.get("subagent"):  # a helper's report to the agent, not the agent's own account
            continue
        if looks_like_tool_output(entry.head):
            continue
        parts = [entry.head, entry.tail] if entry.tail else [entry.head]
        prose = [_FENCED.sub("", part) for part in parts]
        if sum(len(p.strip()) for p in prose) < _ACCOUNT_MIN_CHARS:
            continue
        lines: Lines = []
        for number, part in enumerate(prose):
            if number:  # the message is longer than its excerpt: say where its middle was left out
                lines.append((number * 100_000 - 1, "> …"))
            for index, raw in enumerate(part.split("\n")):
                line = raw.strip()
                if line and not set(line) <= _RULE:
                    lines.append((number * 100_000 + index, "> " + clip(line, w.tail_head)))
        return entry.sequence_number, lines
    return None, []
