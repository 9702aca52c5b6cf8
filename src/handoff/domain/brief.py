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
from dataclasses import dataclass
from typing import Any

from handoff.domain.digest import Digest, Sentence
from handoff.domain.models import EntryExcerpt, HandoffType
from handoff.domain.note import HandoffNote
from handoff.domain.prose import clip
from handoff.domain.recent import Widths, latest_account, tail_lines
from handoff.domain.selection import Section, select
from handoff.domain.tooluse import command_label

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


_EFFECTS = {
    HandoffType.FULL_HANDOFF: "ownership moves to you; the previous owner can no longer write",
    HandoffType.COLLABORATION: "you and the owner may both write to this session",
    HandoffType.CONTEXT_TRANSFER: "a read copy of the context; the owner keeps writing",
}
_FOOTER = "\n_{dropped} more items left out to fit {budget} tokens; the full history is one get_context call away._"


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

    sections = _sections(digest, ctx, tail, Widths.for_budget(budget))
    select(sections, room, lambda text: estimate_tokens(text + "\n"), _clip_to_tokens)
    dropped = sum(len(s.candidates) - len(s.chosen) for s in sections)

    parts = [header]
    for section in sorted(sections, key=lambda s: _DISPLAY_ORDER.index(s.title.split(" (#")[0])):
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
    "Timeline (oldest first)",
    "Code analysed",
    "The agent's latest account",
    "Recent activity (newest last)",
]


_ACCOUNT_MIN_WIDTH = 350  # Widths.tail_head at a 2,000-token budget


def _sections(digest: Digest, ctx: BriefContext, tail: Sequence[EntryExcerpt], w: Widths) -> list[Section]:
    """Sections in priority order (the order pass 1 and pass 2 serve them in)."""
    shown_requests = {r.seq for r in digest.requests}
    # A small brief has no room for a message in full: the recent-activity line gives its gist.
    account_seq, account = latest_account(tail, w) if w.tail_head >= _ACCOUNT_MIN_WIDTH else (None, [])
    salient = [s for s in _ranked_sentences(digest) if s.category == "constraint" or s.seq not in shown_requests]
    constraints = [s for s in salient if s.category == "constraint" and s.role in ("user", "marker", "instructions")]
    rejected = [s for s in salient if s.category == "rejected"]
    placed = {id(s) for s in constraints} | {id(s) for s in rejected}
    findings = [s for s in salient if id(s) not in placed and s.category != "task"]
    steps = [s for s in salient if s.category == "task"]
    recent = [e for e in tail if e.sequence_number != account_seq]
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
        Section("Files", 1.8, [*_file_lines(digest, w)], decay=0.88),
        Section("Commands run", 1.2, [*_command_lines(digest, w)], decay=0.85),
        Section("Timeline (oldest first)", 0.8, [*_step_lines(digest)], decay=0.9),
        Section("Code analysed", 1.0, [*_analysis_lines(digest)], decay=0.8),
        Section(f"The agent's latest account (#{account_seq})", 2.4, account, decay=0.9, cap=0.3),
        Section("Recent activity (newest last)", 1.4, [*tail_lines(recent, w)], decay=0.9),
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


def _task_lines(digest: Digest, w: Widths) -> list[tuple[int, str]]:
    if digest.first_request is None:
        return []
    item = digest.first_request
    return [(0, _quote(clip(item.text, w.task)) + f"\n(#{item.seq})")]


def _request_lines(digest: Digest, w: Widths) -> list[tuple[int, str]]:
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
            command = clip(command_label(tc["cmd"]), 160)
            lines.insert(0, (0, f"- Test command: `{command}` (last run #{tc['q']}{exit_text})"))
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


def _plan_lines(digest: Digest, steps: list[Sentence], w: Widths) -> list[tuple[int, str]]:
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
    for task in reversed(digest.delegated):
        # Subagents still running are open work the next agent inherits; finished ones say what they found.
        if task.get("done"):
            said = clip(str(task.get("said") or ""), w.sentence)
            state = "[!]" if task.get("failed") else "[x]"
            text = f"- {state} subagent: {task.get('what')} (#{task.get('q')}→#{task.get('done')})" + (
                f": {said}" if said else ""
            )
            lines.append((500 + int(task.get("q", 0)), text))
        else:
            ask = clip(str(task.get("ask") or ""), w.sentence)
            text = f"- [~] subagent running: {task.get('what')} (#{task.get('q')})" + (f": {ask}" if ask else "")
            lines.insert(0, (-2, text))
    if digest.plan_text is not None:
        plan = digest.plan_text
        lines.append((1000, f"- Plan presented at #{plan.seq}:\n" + _quote(clip(plan.text, w.task))))
    lines.extend((2000 + s.seq, f"- Mentioned as next: {clip(s.text, w.sentence)} (#{s.seq})") for s in steps[:6])
    return lines


def _step_lines(digest: Digest) -> list[tuple[int, str]]:
    """The session's story, newest first (priority), shown oldest first."""
    lines = []
    for step in reversed(digest.steps):
        times = int(step.get("n", 1))
        again = f" ({times}x)" if times > 1 else ""
        lines.append((int(step["q"]), f"- #{step['q']} {step['k']}: {step['t']}{again}"))
    return lines


def _error_lines(digest: Digest) -> list[tuple[int, str]]:
    lines = []
    for e in reversed(digest.errors):
        times = int(e.get("n", 1))
        where = f"#{e['q']}" if times < 2 else f"#{e.get('first', e['q'])}…#{e['q']}, {times}x"
        origin = f" from `{clip(command_label(e['cmd']), 60)}`" if e.get("cmd") else ""
        lines.append((int(e["q"]), f"- ({where}) `{e['text']}`{origin}"))
    return lines


def _ranked_sentences(digest: Digest) -> list[Sentence]:
    """Salient sentences, best first: score plus a bonus for being recent."""
    seen: dict[str, Sentence] = {}
    for sentence in [*digest.top, *digest.recent]:
        seen.setdefault(sentence.text, sentence)
    span = max(digest.entry_count, 1)
    return sorted(seen.values(), key=lambda s: -(s.score + 1.5 * s.seq / span))


def _sentence_lines(items: list[Sentence], w: Widths) -> list[tuple[int, str]]:
    return [(s.seq, f"- (#{s.seq}{', user' if s.role == 'user' else ''}) {clip(s.text, w.sentence)}") for s in items]


def _file_lines(digest: Digest, w: Widths) -> list[tuple[int, str]]:
    changed = [(p, i) for p, i in digest.files.items() if i.get("a") not in ("read", "ran")]
    looked = [(p, i) for p, i in digest.files.items() if i.get("a") in ("read", "ran")]
    root = _common_root([p for p, _ in changed + looked])
    lines: list[tuple[int, str]] = []
    for rank, (path, info) in enumerate(reversed(changed)):
        history = info.get("h", [])
        earlier = ", ".join(f"{a} #{q}" for a, q in history[:-1])
        count = int(info.get("n", 1))
        gist = str(info.get("g") or "")
        notes = "; ".join(part for part in (earlier, f"{count}x" if count > 2 else "") if part)
        lines.append(
            (
                rank,
                f"- `{_relative(path, root)}`: {info.get('a')} #{info.get('q')}"
                + (f" ({notes})" if notes else "")
                + (f": {clip(gist, w.gist)}" if gist else ""),
            )
        )
    if looked:
        names = ", ".join(f"`{_relative(p, root)}`" for p, _ in reversed(looked[-10:]))
        lines.append((len(lines), f"- Read or ran: {names}"))
    if root and lines:
        order, first = lines[0]
        lines[0] = (order, f"- (paths under `{root}`)\n{first}")
    return lines


def _common_root(paths: list[str]) -> str:
    """The directory most absolute paths share (at least two levels deep), to print once."""
    absolute = [p for p in paths if p.startswith("/")]
    if len(absolute) < 2:
        return ""
    parts = [p.split("/")[:-1] for p in absolute]
    shared: list[str] = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        shared.append(level[0])
    root = "/".join(shared)
    return root + "/" if root.count("/") >= 2 else ""


def _relative(path: str, root: str) -> str:
    return path[len(root) :] if root and path.startswith(root) else path


def _command_lines(digest: Digest, w: Widths) -> list[tuple[int, str]]:
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
        line = (int(record.get("q", 0)), f"- #{record.get('q')} `{clip(command_label(cmd), w.command)}`{status}{gist}")
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
