"""Rendering the handoff brief from a session digest and the newest entries, within a token budget.

The brief is Markdown for an LLM reader. Each section offers lines in its own priority order. The
budget is spent in two passes: first every section gets up to its share (so a long request cannot
crowd out the failing tests), then what is left goes to the sections again in priority order, the
newest raw history last, until the budget is used. A bigger budget therefore always carries more,
and the estimate of the result never exceeds the budget.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from handoff.domain.digest import Digest, Sentence
from handoff.domain.models import ContextType, EntryExcerpt, HandoffType
from handoff.domain.note import HandoffNote
from handoff.domain.prose import clip
from handoff.domain.tooluse import looks_like_tool_output, read_tool_call

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


@dataclass(slots=True)
class _Section:
    title: str
    share: float
    candidates: list[tuple[int, str]]  # (display order, text), in priority order
    chosen: list[tuple[int, str]] = field(default_factory=list)
    used: int = 0
    next_index: int = 0
    lead: str = ""  # a line shown first whenever the section shows anything


_EFFECTS = {
    HandoffType.FULL_HANDOFF: "ownership moves to you; the previous owner can no longer write",
    HandoffType.COLLABORATION: "you and the owner may both write to this session",
    HandoffType.CONTEXT_TRANSFER: "a read copy of the context; the owner keeps writing",
}
_FOOTER = "\n_{dropped} more items left out to fit {budget} tokens; the full history is one get_context call away._"
_TAIL_HEAD_CHARS = 700
_TAIL_OUTPUT_LINES = 6


def render_brief(
    digest: Digest, ctx: BriefContext, token_budget: int, tail: Sequence[EntryExcerpt] = ()
) -> RenderedBrief:
    budget = max(token_budget, 1)
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(digest.counts.items())) or "no entries"
    header = "\n".join(
        [
            f"# Handoff brief: session `{ctx.session_key}`",
            f"From **{ctx.source_agent}** to **{ctx.target_agent}** ({ctx.handoff_type.value}: "
            f"{_EFFECTS[ctx.handoff_type]}).",
            f"History: {digest.entry_count} entries ({counts}), up to #{ctx.up_to_sequence}. "
            "(#N = entry sequence number.)",
        ]
    )
    header_cost = estimate_tokens(header + "\n")
    if header_cost > budget:
        text = _clip_to_tokens(header, budget)
        return RenderedBrief(text, estimate_tokens(text), render_summary(digest, ctx), True)
    footer_reserve = estimate_tokens(_FOOTER.format(dropped=9999, budget=token_budget) + "\n")
    room = budget - header_cost - footer_reserve

    sections = _sections(digest, ctx, tail)
    used = 0
    # Pass 1: each section up to its share; pass 2: up to twice that; pass 3: whatever is left,
    # to the sections that gain most from more room first.
    for multiplier in (1.0, 2.0, None):
        order = sections if multiplier is not None else sorted(sections, key=lambda s: _SPILL_ORDER.index(s.title))
        for section in order:
            free = room - used + section.used
            limit = free if multiplier is None else min(free, int(room * section.share * multiplier))
            used += _fill(section, limit)
    dropped = sum(len(s.candidates) - len(s.chosen) for s in sections)

    parts = [header]
    for section in sorted(sections, key=lambda s: _DISPLAY_ORDER.index(s.title)):
        if not section.chosen:
            continue
        parts.append(f"\n## {section.title}")
        if section.lead:
            parts.append(section.lead)
        parts.extend(text for _, text in sorted(section.chosen, key=lambda c: c[0]))
    if dropped:
        parts.append(_FOOTER.format(dropped=dropped, budget=token_budget))
    text = "\n".join(parts)
    tokens = estimate_tokens(text)
    if tokens > budget:  # defensive: per-line estimates are summed with their newlines
        text = _clip_to_tokens(text, budget)
        tokens = estimate_tokens(text)
    return RenderedBrief(text=text, tokens=tokens, summary=render_summary(digest, ctx), truncated=dropped > 0)


def _fill(section: _Section, limit: int) -> int:
    """Add this section's next lines while they fit in `limit`; return the tokens added."""
    added = 0
    while section.next_index < len(section.candidates):
        order, text = section.candidates[section.next_index]
        overhead = (
            0
            if section.chosen
            else estimate_tokens(f"\n## {section.title}\n" + (section.lead + "\n" if section.lead else ""))
        )
        cost = estimate_tokens(text + "\n") + overhead
        if section.used + cost <= limit:
            section.chosen.append((order, text))
            section.used += cost
            added += cost
            section.next_index += 1
            continue
        room = limit - section.used - overhead
        if room >= 40 and estimate_tokens(text) > 80:
            # A long item (the task, a plan) is cut rather than dropped whole.
            cut = _clip_to_tokens(text, room - 2)
            if cut and estimate_tokens(cut + "\n") + overhead + section.used <= limit:
                section.chosen.append((order, cut))
                section.used += estimate_tokens(cut + "\n") + overhead
                added += estimate_tokens(cut + "\n") + overhead
                # What was cut stays a candidate for the second pass.
                section.candidates[section.next_index] = (order, _remainder(text, cut))
                section.candidates.insert(section.next_index, (order, cut))
                section.next_index += 1
        break
    return added


def _remainder(text: str, cut: str) -> str:
    shown = cut.rstrip("…")
    rest = text[len(shown) :].lstrip()
    return "  …" + rest if rest else ""


_SPILL_ORDER = [
    "Handoff note from the agent",
    "Tests",
    "Last errors",
    "Plan and to-do list",
    "Later user requests",
    "Rejected or reverted",
    "Constraints from the user",
    "Findings and decisions",
    "Files",
    "Commands run",
    "Code analysed",
    "Recent activity (newest last)",
    "Task (the user's request)",
]
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


def _sections(digest: Digest, ctx: BriefContext, tail: Sequence[EntryExcerpt]) -> list[_Section]:
    """Sections in priority order (the order pass 1 and pass 2 serve them in)."""
    salient = _ranked_sentences(digest)
    constraints = [s for s in salient if s.category == "constraint" and s.role in ("user", "marker")]
    rejected = [s for s in salient if s.category == "rejected"]
    findings = [s for s in salient if s not in constraints and s not in rejected and s.category != "task"]
    steps = [s for s in salient if s.category == "task"]
    sections = [
        _Section("Handoff note from the agent", 0.35, _note_lines(ctx)),
        _Section("Task (the user's request)", 0.16, _task_lines(digest)),
        _Section("Later user requests", 0.10, _request_lines(digest)),
        _Section("Tests", 0.09, _test_lines(digest)),
        _Section("Plan and to-do list", 0.10, _plan_lines(digest, steps)),
        _Section("Last errors", 0.04, _error_lines(digest)),
        _Section("Constraints from the user", 0.06, _sentence_lines(constraints)),
        _Section("Rejected or reverted", 0.06, _sentence_lines(rejected)),
        _Section("Findings and decisions", 0.12, _sentence_lines(findings)),
        _Section("Files", 0.06, _file_lines(digest)),
        _Section("Commands run", 0.04, _command_lines(digest)),
        _Section("Code analysed", 0.03, _analysis_lines(digest)),
        _Section("Recent activity (newest last)", 0.16, _tail_lines(tail, digest)),
    ]
    return sections


# -- section contents ----------------------------------------------------------------------------
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


def _task_lines(digest: Digest) -> list[tuple[int, str]]:
    if digest.first_request is None:
        return []
    item = digest.first_request
    return [(0, _quote(item.text) + f"\n(#{item.seq}{', ' + item.agent if item.agent else ''})")]


def _request_lines(digest: Digest) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    shown = {id(digest.first_request)}
    last_user = digest.last_user
    if last_user is not None and digest.first_request is not None and last_user.seq != digest.first_request.seq:
        if digest.last_request is None or last_user.seq != digest.last_request.seq:
            lines.append((last_user.seq, f"- (#{last_user.seq}, latest) {clip(' '.join(last_user.text.split()), 300)}"))
    for item in reversed(digest.requests):
        if id(item) in shown or (digest.first_request and item.seq == digest.first_request.seq):
            continue
        label = "latest request" if digest.last_request and item.seq == digest.last_request.seq else "user"
        lines.append((item.seq, f"- (#{item.seq}, {label}) " + item.text.replace("\n", "\n  ")))
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
    for run in reversed(digest.runs[-3:]):
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


def _plan_lines(digest: Digest, steps: list[Sentence]) -> list[tuple[int, str]]:
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
        lines.append((1000, f"- Plan presented at #{plan.seq}:\n" + _quote(plan.text)))
    lines.extend((2000 + s.seq, f"- Mentioned as next: {s.text} (#{s.seq})") for s in steps[:6])
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


def _sentence_lines(items: list[Sentence]) -> list[tuple[int, str]]:
    return [(s.seq, f"- (#{s.seq}{', user' if s.role == 'user' else ''}) {s.text}") for s in items]


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


def _command_lines(digest: Digest) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    last = None
    for record in reversed(digest.commands):
        cmd = str(record.get("cmd", ""))
        if not cmd or cmd == last:
            continue
        last = cmd
        exit_code = record.get("exit")
        status = "" if exit_code is None else f" → exit {exit_code}"
        lines.append((int(record.get("q", 0)), f"- #{record.get('q')} `{clip(cmd, 200)}`{status}"))
    return lines


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


def _tail_lines(tail: Sequence[EntryExcerpt], digest: Digest) -> list[tuple[int, str]]:
    """The newest entries, newest first (priority), each cut to what a reader needs."""
    lines: list[tuple[int, str]] = []
    for entry in sorted(tail, key=lambda e: -e.sequence_number):
        text = _excerpt_line(entry)
        if text:
            lines.append((entry.sequence_number, text))
    return lines


def _excerpt_line(entry: EntryExcerpt) -> str:
    meta = entry.metadata
    seq = entry.sequence_number
    body = entry.head + (("\n…\n" + entry.tail) if entry.tail else "")
    if entry.context_type is ContextType.MESSAGE:
        role = str(meta.get("role") or entry.agent)
        if role.lower() in ("user", "human") and looks_like_tool_output(body):
            return f"- #{seq} output: {_output_excerpt(body)}"
        return f"- #{seq} {role}: {clip(' '.join(entry.head.split()), _TAIL_HEAD_CHARS)}"
    if entry.context_type is ContextType.TOOL_CALL:
        use = read_tool_call(body, meta)
        name = use.tool or "tool"
        what = f"`{clip(use.command, 200)}`" if use.command else ""
        if not what and use.input:
            what = clip(json.dumps(use.input, ensure_ascii=False), 200)
        status = "" if use.exit_code is None else f" → exit {use.exit_code}"
        if use.failed and use.exit_code is None:
            status = " → error"
        out = _output_excerpt(use.output) if use.output else ""
        return f"- #{seq} {name} {what}{status}" + (f": {out}" if out else "")
    if entry.context_type is ContextType.FILE:
        path = meta.get("path") or meta.get("file_path") or "(file)"
        action = meta.get("action") or "touched"
        return f"- #{seq} file `{path}` {action}"
    return f"- #{seq} system: {clip(' '.join(entry.head.split()), 300)}"


def _output_excerpt(output: str | None) -> str:
    if not output:
        return ""
    lines = [line.rstrip() for line in output.strip().splitlines() if line.strip()]
    if len(lines) > _TAIL_OUTPUT_LINES:
        lines = [*lines[:2], "…", *lines[-(_TAIL_OUTPUT_LINES - 2) :]]
    return clip(" ⏎ ".join(line.strip() for line in lines), 500)


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
