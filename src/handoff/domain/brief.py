"""Rendering the handoff brief from a session digest, within a token budget.

The brief is Markdown for an LLM reader. Sections are filled in priority order and a line is only
added while the running estimate stays within the budget, so the result never exceeds it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from handoff.domain.digest import Digest, Item, snippet
from handoff.domain.models import HandoffType

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


@dataclass(frozen=True, slots=True)
class RenderedBrief:
    text: str
    tokens: int
    summary: str
    truncated: bool


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.lines: list[str] = []
        self.dropped = 0

    def add(self, line: str) -> bool:
        cost = estimate_tokens(line + "\n")
        if self.used + cost > self.limit:
            self.dropped += 1
            return False
        self.lines.append(line)
        self.used += cost
        return True

    def section(self, title: str, lines: list[str]) -> None:
        """Add a heading and as many of its lines as fit; skip the heading if none fits."""
        if not lines:
            return
        heading = f"\n## {title}"
        if estimate_tokens(heading + "\n") + estimate_tokens(lines[0] + "\n") + self.used > self.limit:
            self.dropped += len(lines)
            return
        self.add(heading)
        for line in lines:
            self.add(line)


_EFFECTS = {
    HandoffType.FULL_HANDOFF: "ownership moves to you; the previous owner can no longer write",
    HandoffType.COLLABORATION: "you and the owner may both write to this session",
    HandoffType.CONTEXT_TRANSFER: "a read copy of the context; the owner keeps writing",
}


def render_brief(digest: Digest, ctx: BriefContext, token_budget: int) -> RenderedBrief:
    budget = _Budget(max(token_budget, 1))
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(digest.counts.items())) or "no entries"
    header = [
        f"# Handoff brief: session `{ctx.session_key}`",
        f"From **{ctx.source_agent}** to **{ctx.target_agent}** ({ctx.handoff_type.value}: "
        f"{_EFFECTS[ctx.handoff_type]}).",
        f"History: {digest.entry_count} entries ({counts}), up to #{ctx.up_to_sequence}.",
    ]
    for line in header:
        if not budget.add(line):
            break
    # Keep room for the "left out" note, so a cut brief always says so.
    note_template = "\n_{dropped} more lines left out to fit {budget} tokens; fetch the full history._"
    budget.limit -= estimate_tokens(note_template.format(dropped=9999, budget=token_budget) + "\n")

    note = [f"- {key}: {_value_text(value)}" for key, value in ctx.request_data.items()]
    budget.section("Handoff note", note)
    if digest.last_request:
        budget.section("Last request", [_quote(digest.last_request)])
    budget.section("Open tasks", [_bullet(item) for item in reversed(digest.open_tasks)])
    budget.section("Failing tests", [f"- `{t}` (#{seq})" for t, seq in reversed(digest.failing_tests.items())])
    budget.section("Decisions", [_bullet(item) for item in reversed(digest.decisions)])
    budget.section("Rejected approaches", [_bullet(item) for item in reversed(digest.rejected)])
    budget.section(
        "Files touched",
        [
            f"- `{path}` ({'/'.join(info.get('actions', []))} x{info.get('count', 1)}, last #{info.get('last_seq')})"
            for path, info in reversed(digest.files.items())
        ],
    )
    budget.section("Code analysed", [line for a in reversed(digest.analyses) for line in _analysis_lines(a)])
    budget.section(
        "Tools used",
        [
            f"- {name} x{info['count']}" + (f" ({info['errors']} failed)" if info.get("errors") else "")
            for name, info in sorted(digest.tools.items(), key=lambda kv: -kv[1]["count"])
        ],
    )
    if digest.first_request and digest.first_request != digest.last_request:
        budget.section("Original request", [_quote(digest.first_request)])
    budget.section("Recent messages", [_bullet(item, with_agent=True) for item in digest.recent])
    budget.limit = max(token_budget, 1)
    if budget.dropped:
        budget.add(note_template.format(dropped=budget.dropped, budget=token_budget))

    text = "\n".join(budget.lines)
    tokens = estimate_tokens(text)
    if tokens > token_budget:  # only reachable with a budget too small for the header itself
        text = _clip(text, token_budget)
        tokens = estimate_tokens(text)
    return RenderedBrief(text=text, tokens=tokens, summary=render_summary(digest, ctx), truncated=budget.dropped > 0)


def render_summary(digest: Digest, ctx: BriefContext) -> str:
    parts = [f"Session {ctx.session_key}: {digest.entry_count} entries by {', '.join(digest.agents) or 'nobody yet'}."]
    if digest.last_request:
        parts.append(f'Last request: "{snippet(digest.last_request.text, 160)}".')
    parts.append(
        f"{len(digest.decisions)} decisions, {len(digest.open_tasks)} open tasks, "
        f"{len(digest.failing_tests)} failing tests, {len(digest.files)} files touched."
    )
    return " ".join(parts)


def _analysis_lines(analysis: dict[str, Any]) -> list[str]:
    languages = ", ".join(f"{name} {n}" for name, n in sorted(analysis.get("languages", {}).items()))
    count = int(analysis.get("file_count", 0))
    files = [f"`{p}`" for p in analysis.get("files", [])]
    more = count - len(files)
    lines = [
        f"- (#{analysis.get('seq')}) {analysis.get('analysis_type')} analysis of {count} files"
        + (f" ({languages})" if languages else "")
        + (f", {analysis['error_count']} not analysed" if analysis.get("error_count") else "")
    ]
    if files:
        lines.append("  - files: " + ", ".join(files) + (f" (+{more} more)" if more > 0 else ""))
    if analysis.get("top_symbols"):
        lines.append("  - key symbols: " + ", ".join(f"`{s}`" for s in analysis["top_symbols"]))
    return lines


def _bullet(item: Item, *, with_agent: bool = False) -> str:
    who = f" {item.agent}:" if with_agent and item.agent else ""
    return f"- (#{item.seq}){who} {item.text}"


def _quote(item: Item) -> str:
    return f"> {item.text}\n\n(#{item.seq}, {item.agent})"


def _value_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return snippet(text, 400)


def _clip(text: str, token_budget: int) -> str:
    while text and estimate_tokens(text) > token_budget:
        text = text[: max(0, len(text) - max(1, len(text) // 10))]
    return text
