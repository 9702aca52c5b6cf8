"""Rendering the handoff brief from a session digest and the newest entries, within a token budget.

The brief is Markdown for an LLM reader. Each section offers lines in its own priority order. The
budget is spent in two passes: first every section gets up to its share (so a long request cannot
crowd out the failing tests), then what is left goes to the sections again in priority order, the
newest raw history last, until the budget is used. A bigger budget therefore always carries more,
and the estimate of the result never exceeds the budget.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from handoff.domain.digest import Digest, Sentence
from handoff.domain.models import ContextType, EntryExcerpt, HandoffType
from handoff.domain.note import HandoffNote
from handoff.domain.prose import clip, score_sentence, sentences
from handoff.domain.selection import Section, select
from handoff.domain.tooluse import is_read_only, last_error, looks_like_tool_output, read_tool_call

MIN_TOKEN_BUDGET = 64


def estimate_tokens(text: str) -> int:
    """A deliberately conservative token estimate: 3 ASCII characters or 1 other character each.

    Real tokenizers average about 4 characters of English per token, so a brief that fits this
    estimate fits the reader's budget with room to spare.
    """
    ascii_chars = len(text) if text.isascii() else len(text.encode("ascii", "ignore"))
    return math.ceil(ascii_chars / 3) + (len(text) - ascii_chars)


@dataclass(frozen=True, slots=True)
class BriefContext:
    session_key: str
    source_agent: str
    target_agent: str
    handoff_type: HandoffType
    request_data: dict[str, Any]
    up_to_sequence: int
    note: HandoffNote | None = None


@dataclass(frozen=True, slots=True)
class RenderedBrief:
    text: str
    tokens: int
    summary: str
    truncated: bool


@dataclass(frozen=True, slots=True)
class _Widths:
    """How long one item may be: small budgets get more, shorter items (more facts per token)."""

    sentence: int
    request: int
    task: int
    tail_head: int
    tail_output: int
    command: int

    @classmethod
    def for_budget(cls, budget: int) -> _Widths:
        scale = min(1.0, max(0.3, budget / 4000))
        return cls(
            sentence=int(400 * scale),
            request=int(1500 * scale),
            task=int(6000 * scale * scale),
            tail_head=int(700 * scale),
            tail_output=int(500 * scale),
            command=int(240 * max(scale, 0.6)),
        )


_EFFECTS = {
    HandoffType.FULL_HANDOFF: "ownership moves to you; the previous owner can no longer write",
    HandoffType.COLLABORATION: "you and the owner may both write to this session",
    HandoffType.CONTEXT_TRANSFER: "a read copy of the context; the owner keeps writing",
}
_FOOTER = "\n_{dropped} more items left out to fit {budget} tokens; the full history is one get_context call away._"
_TAIL_OUTPUT_LINES = 6


def render_brief(
    digest: Digest, ctx: BriefContext, token_budget: int, tail: Sequence[EntryExcerpt] = ()
) -> RenderedBrief:
    budget = max(token_budget, 1)
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(digest.counts.items())) or "no entries"
    header = "\n".join(
        [
            f"# Handoff brief: session `{ctx.session_key}`, {ctx.source_agent} → {ctx.target_agent}",
            f"{ctx.handoff_type.value}: {_EFFECTS[ctx.handoff_type]}. History: {digest.entry_count} entries "
            f"({counts}); #N = entry number.",
        ]
    )
    header_cost = estimate_tokens(header + "\n")
    if header_cost > budget:
        text = _clip_to_tokens(header, budget)
        return RenderedBrief(text, estimate_tokens(text), render_summary(digest, ctx), True)
    footer_reserve = estimate_tokens(_FOOTER.format(dropped=9999, budget=token_budget) + "\n")
    room = budget - header_cost - footer_reserve

    sections = _sections(digest, ctx, tail, _Widths.for_budget(budget))
    select(sections, room, lambda text: estimate_tokens(text + "\n"), _clip_to_tokens)
    dropped = sum(len(s.candidates) - len(s.chosen) for s in sections)

    parts = [header]
    for section in sorted(sections, key=lambda s: _DISPLAY_ORDER.index(s.title)):
        if not section.chosen:
            continue
        parts.append(f"\n## {section.title}")
        parts.extend(text for _, text in sorted(section.chosen, key=lambda c: c[0]))
    if dropped:
        parts.append(_FOOTER.format(dropped=dropped, budget=token_budget))
    text = "\n".join(parts)
    tokens = estimate_tokens(text)
    if tokens > budget:  # defensive: per-line estimates are summed with their newlines
        text = _clip_to_tokens(text, budget)
        tokens = estimate_tokens(text)
    return RenderedBrief(text=text, tokens=tokens, summary=render_summary(digest, ctx), truncated=dropped > 0)


_DISPLAY_ORDER = [
    "Handoff note from the agent",
    "Task (the user's request)",
    "Later user requests",
    "Constraints from the user",
    "Plan and to-do list",
    "Tests",
    "Last errors",
    "Findings and decisions",
    "Rejected or reverted",
    "Files",
    "Commands run",
    "Code analysed",
    "Recent activity (newest last)",
]


def _sections(digest: Digest, ctx: BriefContext, tail: Sequence[EntryExcerpt], w: _Widths) -> list[Section]:
    """Sections in priority order (the order pass 1 and pass 2 serve them in)."""
    shown_requests = {r.seq for r in digest.requests}
    salient = [s for s in _ranked_sentences(digest) if s.category == "constraint" or s.seq not in shown_requests]
    constraints = [s for s in salient if s.category == "constraint" and s.role in ("user", "marker", "instructions")]
    rejected = [s for s in salient if s.category == "rejected"]
    findings = [s for s in salient if s not in constraints and s not in rejected and s.category != "task"]
    steps = [s for s in salient if s.category == "task"]
    sections = [
        Section("Handoff note from the agent", 6.0, [*_note_lines(ctx)], decay=0.98, cap=0.4),
        Section("Task (the user's request)", 5.0, [*_task_lines(digest, w)], cap=0.22),
        Section("Later user requests", 2.6, [*_request_lines(digest, w)], decay=0.8, cap=0.25),
        Section("Tests", 2.4, [*_test_lines(digest)], decay=0.85),
        Section("Last errors", 2.2, [*_error_lines(digest)], decay=0.75),
        Section("Plan and to-do list", 2.0, [*_plan_lines(digest, steps, w)], decay=0.9, cap=0.3),
        Section("Constraints from the user", 2.0, [*_sentence_lines(constraints, w)], decay=0.8),
        Section("Rejected or reverted", 2.0, [*_sentence_lines(rejected, w)], decay=0.8),
        Section("Findings and decisions", 1.6, [*_sentence_lines(findings, w)], decay=0.92),
        Section("Files", 1.8, [*_file_lines(digest)], decay=0.88),
        Section("Commands run", 1.2, [*_command_lines(digest, w)], decay=0.85),
        Section("Code analysed", 1.0, [*_analysis_lines(digest)], decay=0.8),
        Section("Recent activity (newest last)", 1.4, [*_tail_lines(tail, w)], decay=0.9),
    ]
    return sections


# -- section contents ----------------------------------------------------------------------------
Lines = list[tuple[int, str | Callable[[], str]]]


def _note_lines(ctx: BriefContext) -> list[tuple[int, str]]:
    lines: list[str] = []
    note = ctx.note
    if note is not None:
        if note.goal:
            lines.append(f"**Goal:** {note.goal}")
        if note.state:
            lines.append(f"**State:** {note.state}")
        for label, items in (
            ("Next steps", note.next_steps),
            ("Open tasks", note.open_tasks),
            ("Decisions", note.decisions),
            ("Rejected", note.rejected),
            ("Constraints", note.constraints),
        ):
            lines.extend(f"- {label}: {item}" for item in items)
        if note.text:
            lines.append(note.text)
    lines.extend(f"- {key}: {_value_text(value)}" for key, value in ctx.request_data.items())
    return list(enumerate(lines))


def _task_lines(digest: Digest, w: _Widths) -> list[tuple[int, str]]:
    if digest.first_request is None:
        return []
    item = digest.first_request
    return [(0, _quote(clip(item.text, w.task)) + f"\n(#{item.seq})")]


def _request_lines(digest: Digest, w: _Widths) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    shown = {id(digest.first_request)}
    last_user = digest.last_user
    if (
        last_user is not None
        and digest.first_request is not None
        and last_user.seq != digest.first_request.seq
        and (digest.last_request is None or last_user.seq != digest.last_request.seq)
    ):
        lines.append((last_user.seq, f"- (#{last_user.seq}, latest) {clip(' '.join(last_user.text.split()), 300)}"))
    for item in reversed(digest.requests):
        if id(item) in shown or (digest.first_request and item.seq == digest.first_request.seq):
            continue
        label = "latest request" if digest.last_request and item.seq == digest.last_request.seq else "user"
        lines.append((item.seq, f"- (#{item.seq}, {label}) " + clip(item.text, w.request).replace("\n", "\n  ")))
    return lines


def _test_lines(digest: Digest) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    failing = digest.failing_tests()
    if failing:
        for test, info in reversed(failing):
            detail = f": {info['d']}" if info.get("d") else ""
            lines.append((10, f"- FAILING `{test}` ({info.get('s')} at #{info.get('q')}){detail}"))
    if digest.test_command:
        tc = digest.test_command
        exit_text = f", exit {tc['exit']}" if tc.get("exit") is not None else ""
        if tc.get("cmd"):
            lines.insert(0, (0, f"- Test command: `{tc['cmd']}` (last run #{tc['q']}{exit_text})"))
    shown_summaries: set[str] = set()
    for run in reversed(digest.runs[-4:]):
        if run["summary"] in shown_summaries:
            continue
        shown_summaries.add(run["summary"])
        verdict = "green" if run.get("green") else f"{run.get('failed', 0)} failing"
        lines.append((5 + len(lines), f"- Run #{run['q']} ({run['runner']}, {verdict}): {run['summary']}"))
    fixed = digest.fixed_tests()
    if fixed:
        names = ", ".join(f"`{t}`" for t, _ in reversed(fixed[-12:]))
        lines.append((20, f"- Fixed since they failed (passing now): {names}"))
    if not failing and digest.tests and not fixed:
        passing = [t for t, i in digest.tests.items() if i.get("s") == "passed"][-8:]
        if passing:
            lines.append((30, "- Passing: " + ", ".join(f"`{t}`" for t in passing)))
    return lines


def _plan_lines(digest: Digest, steps: list[Sentence], w: _Widths) -> list[tuple[int, str]]:
    marks = {"completed": "[x]", "in_progress": "[~]", "pending": "[ ]", "cancelled": "[-]"}
    lines: list[tuple[int, str]] = []
    open_items = [p for p in digest.plan if p.get("status") in ("in_progress", "pending")]
    done = [p for p in digest.plan if p.get("status") not in ("in_progress", "pending")]
    for index, item in enumerate(open_items + done):
        order = digest.plan.index(item)
        suffix = f" (#{item.get('seq')})" if item.get("seq") else ""
        lines.append((order, f"- {marks.get(str(item.get('status')), '[ ]')} {item.get('text')}{suffix}"))
        if index == len(open_items) - 1 and digest.plan_note:
            lines.append((-1, f"- Plan note: {digest.plan_note}"))
    if digest.plan_text is not None:
        plan = digest.plan_text
        lines.append((1000, f"- Plan presented at #{plan.seq}:\n" + _quote(clip(plan.text, w.task))))
    lines.extend((2000 + s.seq, f"- Mentioned as next: {clip(s.text, w.sentence)} (#{s.seq})") for s in steps[:6])
    return lines


def _error_lines(digest: Digest) -> list[tuple[int, str]]:
    return [
        (int(e["q"]), f"- (#{e['q']}) `{e['text']}`" + (f" from `{clip(e['cmd'], 120)}`" if e.get("cmd") else ""))
        for e in reversed(digest.errors)
    ]


def _ranked_sentences(digest: Digest) -> list[Sentence]:
    """Salient sentences, best first: score plus a bonus for being recent."""
    seen: dict[str, Sentence] = {}
    for sentence in [*digest.top, *digest.recent]:
        seen.setdefault(sentence.text, sentence)
    span = max(digest.entry_count, 1)
    return sorted(seen.values(), key=lambda s: -(s.score + 1.5 * s.seq / span))


def _sentence_lines(items: list[Sentence], w: _Widths) -> list[tuple[int, str]]:
    return [(s.seq, f"- (#{s.seq}{', user' if s.role == 'user' else ''}) {clip(s.text, w.sentence)}") for s in items]


def _file_lines(digest: Digest) -> list[tuple[int, str]]:
    changed = [(p, i) for p, i in digest.files.items() if i.get("a") not in ("read", "ran")]
    looked = [(p, i) for p, i in digest.files.items() if i.get("a") in ("read", "ran")]
    lines: list[tuple[int, str]] = []
    for rank, (path, info) in enumerate(reversed(changed)):
        history = info.get("h", [])
        earlier = ", ".join(f"{a} #{q}" for a, q in history[:-1])
        lines.append(
            (
                rank,
                f"- `{path}`: {info.get('a')} #{info.get('q')}"
                + (f" (earlier: {earlier})" if earlier else "")
                + (f", {info['n']} changes" if int(info.get("n", 1)) > 2 else ""),
            )
        )
    if looked:
        names = ", ".join(f"`{p}`" for p, _ in reversed(looked[-10:]))
        lines.append((len(lines), f"- Read or ran: {names}"))
    return lines


def _command_lines(digest: Digest, w: _Widths) -> list[tuple[int, str]]:
    """Commands that changed or ran something first (newest first), then the ones that only looked."""
    acting: list[tuple[int, str]] = []
    looking: list[tuple[int, str]] = []
    seen: set[str] = set()
    for record in reversed(digest.commands):
        cmd = str(record.get("cmd", ""))
        if not cmd or cmd in seen:
            continue
        seen.add(cmd)
        exit_code = record.get("exit")
        status = "" if exit_code is None else f" → exit {exit_code}"
        gist = f": {record['gist']}" if record.get("gist") and not record.get("ro") else ""
        line = (int(record.get("q", 0)), f"- #{record.get('q')} `{clip(cmd, w.command)}`{status}{gist}")
        (looking if record.get("ro") and not exit_code else acting).append(line)
    return acting + looking


def _analysis_lines(digest: Digest) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    for analysis in reversed(digest.analyses):
        languages = ", ".join(f"{name} {n}" for name, n in sorted(analysis.get("languages", {}).items()))
        count = int(analysis.get("file_count", 0))
        files = [f"`{p}`" for p in analysis.get("files", [])]
        more = count - len(files)
        text = (
            f"- (#{analysis.get('seq')}) {analysis.get('analysis_type')} analysis of {count} files"
            + (f" ({languages})" if languages else "")
            + (f", {analysis['error_count']} not analysed" if analysis.get("error_count") else "")
        )
        if files:
            text += "\n  - files: " + ", ".join(files) + (f" (+{more} more)" if more > 0 else "")
        if analysis.get("top_symbols"):
            text += "\n  - key symbols: " + ", ".join(f"`{s}`" for s in analysis["top_symbols"])
        lines.append((int(analysis.get("seq", 0)), text))
    return lines


def _tail_lines(tail: Sequence[EntryExcerpt], w: _Widths) -> Lines:
    """The newest entries, newest first (priority), each cut to what a reader needs.

    A tool call and the output that answers it share one line, so a command costs one line.
    """
    ordered = sorted(tail, key=lambda e: e.sequence_number)
    answered: dict[int, EntryExcerpt] = {}
    for call, result in itertools.pairwise(ordered):
        if _is_call(call) and _answers(result, call):
            answered[call.sequence_number] = result
    skip = {r.sequence_number for r in answered.values()}
    lines: Lines = []
    for entry in reversed(ordered):
        if entry.sequence_number not in skip:
            lines.append((entry.sequence_number, _deferred(entry, answered.get(entry.sequence_number), w)))
    return lines


def _deferred(entry: EntryExcerpt, result: EntryExcerpt | None, w: _Widths) -> Callable[[], str]:
    return lambda: _excerpt_line(entry, result, w)


def _is_call(entry: EntryExcerpt) -> bool:
    meta = entry.metadata
    return entry.context_type in (ContextType.TOOL_CALL, ContextType.FILE) and (
        meta.get("phase") == "call"
        or (isinstance(meta.get("input"), dict) and "output" not in meta)
        or (
            entry.context_type is ContextType.TOOL_CALL
            and entry.head.startswith("$ ")
            and "\n" not in entry.head.strip()
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


def _excerpt_line(entry: EntryExcerpt, result: EntryExcerpt | None, w: _Widths) -> str:
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
        if entry.context_type is ContextType.FILE:
            what = f"`{meta.get('path', '')}` ({meta.get('action', 'changed')})"
        elif use.command:
            what = f"`{clip(use.command, w.command)}`"
        else:
            what = _input_text(use.input, w.tail_output) if use.input else clip(" ".join(entry.head.split()), w.command)
        outcome = ""
        if result is not None:
            answer = read_tool_call(result.head + (("\n…\n" + result.tail) if result.tail else ""), result.metadata)
            if answer.exit_code is not None:
                outcome = f" → exit {answer.exit_code}"
            elif answer.failed:
                outcome = " → error"
            out = "" if use.command and is_read_only(use.command) else _output_summary(answer, w.tail_output)
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
    lines = [line.rstrip() for line in output.strip().splitlines() if line.strip()]
    if len(lines) > _TAIL_OUTPUT_LINES:
        lines = [*lines[:2], "…", *lines[-(_TAIL_OUTPUT_LINES - 2) :]]
    return clip(" ⏎ ".join(line.strip() for line in lines), limit)


# -- helpers ------------------------------------------------------------------------------------
def render_summary(digest: Digest, ctx: BriefContext) -> str:
    parts = [f"Session {ctx.session_key}: {digest.entry_count} entries by {', '.join(digest.agents) or 'nobody yet'}."]
    request = digest.last_request or digest.first_request
    if request:
        parts.append(f'Last request: "{clip(" ".join(request.text.split()), 160)}".')
    parts.append(
        f"{len(digest.open_plan_items())} open tasks, {len(digest.failing_tests())} failing tests, "
        f"{sum(1 for i in digest.files.values() if i.get('a') not in ('read', 'ran'))} files changed."
    )
    return " ".join(parts)


def _quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.splitlines())


def _value_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return clip(" ".join(text.split()), 600)


def _clip_to_tokens(text: str, tokens: int) -> str:
    """The longest prefix (cut at a word where possible, marked with …) within `tokens`."""
    if tokens <= 0:
        return ""
    if estimate_tokens(text) <= tokens:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_tokens(text[:middle] + "…") <= tokens:
            low = middle
        else:
            high = middle - 1
    cut = text[:low]
    space = cut.rfind(" ")
    if space > low * 0.8:
        cut = cut[:space]
    return cut.rstrip() + "…" if cut else ""
