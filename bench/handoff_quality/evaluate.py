"""Scoring handoff briefs on real agent logs against the free baseline: the transcript's tail.

Each case is a real, public log (see its PROVENANCE.md) cut at a point where another agent has to
take over, plus facts written from reading the log: what the next agent must know, each with the
tokens a brief that carries it would have to contain. A case's log is read by the same readers
`handoff import` uses and folded entry by entry, as the server does on append; the brief is then
rendered at each budget. Two ways of streaming are scored:

- `import`: the entries with the metadata `handoff import` gives them (role, tool, exit status…);
- `plain`: only the role is kept and tool calls become plain text, as a minimal integration that
  calls update_context without reading our docs would send them.

The baseline gets the same budget: the last 3 × budget characters of the transcript (the estimate
the brief is held to counts 3 ASCII characters a token).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handoff.capture.detect import detect_format, read_log
from handoff.capture.records import Captured, ReadReport
from handoff.domain.brief import BriefContext, render_brief
from handoff.domain.digest import Digest
from handoff.domain.models import ContextEntry, ContextType, EntryExcerpt, HandoffType
from handoff.services.handoffs import TAIL_ENTRIES, TAIL_EXCERPT_CHARS

CASES = Path(__file__).parent / "cases"
SCENARIOS = Path(__file__).parent / "scenarios"
BUDGETS = (1000, 2000, 4000)


@dataclass(frozen=True, slots=True)
class Fact:
    id: str
    what: str
    all_of: list[list[str]]

    def carried_by(self, text: str) -> bool:
        lowered = text.lower()
        return all(any(alt.lower() in lowered for alt in group) for group in self.all_of)


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    agent: str
    entries: list[Captured]
    facts: list[Fact]


def load_facts(path: Path) -> tuple[str, list[Fact]]:
    data = json.loads(path.read_text())
    facts = [Fact(f["id"], f["what"], f["all_of"]) for f in data["facts"]]
    return str(data.get("agent", "")), facts


def load_cases(root: Path = CASES) -> list[Case]:
    cases = []
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        source = next(iter(sorted(directory.glob("source.*"))), None)
        if source is None:
            continue
        agent, facts = load_facts(directory / "facts.json")
        report = ReadReport()
        entries = list(read_log(source, detect_format(source), report))
        cases.append(Case(directory.name, agent, entries, facts))
    return cases


def _reading_noise(count: int) -> list[list[Captured]]:
    """What agents do between the steps that matter: read files. Real files, so real text."""
    sources = sorted((Path(__file__).resolve().parents[2] / "src" / "handoff").rglob("*.py"))
    noise = []
    for i in range(count):
        path = sources[(7 * i) % len(sources)]
        rel = path.relative_to(path.parents[2])
        body = "\n".join(path.read_text().splitlines()[:90])
        noise.append(
            [
                Captured(f"n{i}c", "tool_call", f"$ sed -n '1,90p' {rel}", {"tool": "bash", "phase": "call"}),
                Captured(f"n{i}o", "tool_call", body, {"tool": "bash", "phase": "result", "exit_code": 0}),
            ]
        )
    return noise


def load_scenarios(root: Path = SCENARIOS) -> list[Case]:
    """Hand-written sessions (update_context calls as JSON, with their facts), with the file reading
    agents do between steps interleaved, so the session is longer than any budget."""
    cases = []
    for path in sorted(root.glob("*.json")):
        data = json.loads(path.read_text())
        scripted = data["entries"]
        noise = _reading_noise(2 * len(scripted))
        entries: list[Captured] = []
        for i, e in enumerate(scripted):
            entries.append(Captured(str(i), e["context_type"], e["content"], e.get("metadata", {}), e.get("agent")))
            if i < len(scripted) - 1:
                entries.extend(noise[2 * i] + noise[2 * i + 1])
        facts = [Fact(f["id"], f["what"], f["all_of"]) for f in data["facts"]]
        cases.append(Case(path.stem, "hand-written", entries, facts))
    return cases


def plain(entries: Iterable[Captured]) -> list[Captured]:
    """The entries as a minimal integration sends them: role kept, everything else as text."""
    out = []
    for e in entries:
        role = e.metadata.get("role")
        meta = {"role": role} if isinstance(role, str) else {}
        content = e.content
        if e.context_type == "tool_call":
            tool = e.metadata.get("tool") or "tool"
            if e.metadata.get("phase") == "call" and not content.startswith("$ "):
                content = f"{tool}: {content}"
            meta = {}
        elif e.context_type == "file":
            content = f"{e.metadata.get('action', 'changed')} {e.metadata.get('path', '')}\n{content}"
        out.append(Captured(e.record_id, e.context_type, content, meta, e.agent))
    return out


def transcript(entries: Iterable[Captured]) -> str:
    lines = []
    for e in entries:
        who = e.metadata.get("role") or e.metadata.get("tool") or e.context_type
        lines.append(f"{who}: {e.content}")
    return "\n".join(lines)


def fold(entries: list[Captured], agent: str = "agent-a") -> tuple[Digest, list[EntryExcerpt]]:
    digest = Digest()
    rows: list[ContextEntry] = []
    for seq, e in enumerate(entries, start=1):
        kind = ContextType(e.context_type)
        writer = e.agent or agent
        digest.absorb(seq=seq, context_type=kind, content=e.content, metadata=e.metadata, agent=writer)
        rows.append(
            ContextEntry(0, seq, kind, e.content, e.metadata, writer, None, len(e.content), "")  # type: ignore[arg-type]
        )
    tail = [EntryExcerpt.of(r, TAIL_EXCERPT_CHARS) for r in reversed(rows[-TAIL_ENTRIES:])]
    # The server stores and reloads the digest between appends: do the same.
    return Digest.from_json(digest.to_json()), tail


def brief(digest: Digest, tail: list[EntryExcerpt], budget: int, count: int) -> str:
    ctx = BriefContext("case", "agent-a", "agent-b", HandoffType.FULL_HANDOFF, {}, count)
    return render_brief(digest, ctx, budget, tail).text


@dataclass
class Score:
    case: str
    mode: str
    budget: int
    brief: float
    tail: float
    missed: list[str]


def score_case(case: Case, mode: str, budgets: Iterable[int] = BUDGETS) -> list[Score]:
    entries = plain(case.entries) if mode == "plain" else case.entries
    digest, tail = fold(entries)
    text = transcript(entries)
    scores = []
    for budget in budgets:
        rendered = brief(digest, tail, budget, len(entries))
        baseline = text[-3 * budget :]
        carried = [f for f in case.facts if f.carried_by(rendered)]
        scores.append(
            Score(
                case.name,
                mode,
                budget,
                len(carried) / len(case.facts),
                sum(f.carried_by(baseline) for f in case.facts) / len(case.facts),
                [f.id for f in case.facts if f not in carried],
            )
        )
    return scores


def summarise(scores: list[Score]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for s in scores:
        row = table.setdefault(f"{s.mode}@{s.budget}", {"brief": [], "tail": []})
        row["brief"].append(s.brief)
        row["tail"].append(s.tail)
    return {k: {m: round(sum(v) / len(v), 3) for m, v in row.items()} for k, row in table.items()}


BASELINE = Path(__file__).parent / "baseline.json"


def measure() -> dict[str, Any]:
    """Mean recall of the brief and of the tail per mode@budget, real cases and scenarios."""
    cases = load_cases()
    scores = [s for case in cases for mode in ("import", "plain") for s in score_case(case, mode)]
    scenario_scores = [s for case in load_scenarios() for s in score_case(case, "import")]
    return {"real": summarise(scores), "scenarios": summarise(scenario_scores)}
