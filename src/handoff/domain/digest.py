"""A bounded running digest of a session, folded one entry at a time.

The handoff brief is rendered from this digest, so a handoff on a session with 10,000 entries
reads one small row instead of the whole history. Each append folds its entry in (same
transaction), and every list here is capped, so the digest stays a few KiB whatever the session's
size. Extraction is deterministic: explicit `metadata.kind` first, then line markers in the text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from handoff.domain.models import ContextType

SNIPPET_CHARS = 300
MAX_RECENT = 6
MAX_DECISIONS = 15
MAX_REJECTED = 10
MAX_TASKS = 20
MAX_FAILING = 20
MAX_FILES = 40
MAX_TOOLS = 25
MAX_AGENTS = 20
MAX_ANALYSES = 5
MAX_ANALYSIS_FILES = 12
MAX_ANALYSIS_SYMBOLS = 15

# Markers an agent can write at the start of a line ("- Decision: use WAL").
_MARKERS: list[tuple[str, re.Pattern[str]]] = [
    ("decision", re.compile(r"^\s*(?:[-*]\s*)?(?:decision|decided)\s*:\s*(.+)$", re.I)),
    ("rejected", re.compile(r"^\s*(?:[-*]\s*)?(?:rejected|tried and rejected|won't do)\s*:\s*(.+)$", re.I)),
    ("task", re.compile(r"^\s*(?:[-*]\s*)?(?:todo|open task|next)\s*:\s*(.+)$", re.I)),
    ("task_done", re.compile(r"^\s*(?:[-*]\s*)?(?:done)\s*:\s*(.+)$", re.I)),
]
# pytest-style result lines: "FAILED tests/test_x.py::test_y - AssertionError"
_TEST_RESULT = re.compile(r"^\s*(FAILED|ERROR|PASSED)\s+(\S+::\S+|\S+\.py\S*)", re.M)
_EXPLICIT_KINDS = {"decision", "rejected", "task", "task_done", "request", "test_failure", "test_pass"}


@dataclass(slots=True)
class Item:
    seq: int
    text: str
    agent: str = ""

    @classmethod
    def load(cls, raw: dict[str, Any]) -> Item:
        return cls(seq=int(raw["seq"]), text=str(raw["text"]), agent=str(raw.get("agent", "")))


@dataclass(slots=True)
class Digest:
    entry_count: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    agents: list[str] = field(default_factory=list)
    first_request: Item | None = None
    last_request: Item | None = None
    recent: list[Item] = field(default_factory=list)
    decisions: list[Item] = field(default_factory=list)
    rejected: list[Item] = field(default_factory=list)
    open_tasks: list[Item] = field(default_factory=list)
    failing_tests: dict[str, int] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    tools: dict[str, dict[str, int]] = field(default_factory=dict)
    analyses: list[dict[str, Any]] = field(default_factory=list)

    # -- persistence ---------------------------------------------------------------------------
    def to_json(self) -> str:
        # Built by hand: dataclasses.asdict deep-copies, and this runs on every append.
        def item(value: Item | None) -> dict[str, Any] | None:
            return None if value is None else {"seq": value.seq, "text": value.text, "agent": value.agent}

        data = {
            "entry_count": self.entry_count,
            "counts": self.counts,
            "agents": self.agents,
            "first_request": item(self.first_request),
            "last_request": item(self.last_request),
            "recent": [item(v) for v in self.recent],
            "decisions": [item(v) for v in self.decisions],
            "rejected": [item(v) for v in self.rejected],
            "open_tasks": [item(v) for v in self.open_tasks],
            "failing_tests": self.failing_tests,
            "files": self.files,
            "tools": self.tools,
            "analyses": self.analyses,
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | None) -> Digest:
        if not raw:
            return cls()
        data = json.loads(raw)

        def item(value: Any) -> Item | None:
            return Item.load(value) if value else None

        return cls(
            entry_count=int(data.get("entry_count", 0)),
            counts=dict(data.get("counts", {})),
            agents=list(data.get("agents", [])),
            first_request=item(data.get("first_request")),
            last_request=item(data.get("last_request")),
            recent=[Item.load(v) for v in data.get("recent", [])],
            decisions=[Item.load(v) for v in data.get("decisions", [])],
            rejected=[Item.load(v) for v in data.get("rejected", [])],
            open_tasks=[Item.load(v) for v in data.get("open_tasks", [])],
            failing_tests={str(k): int(v) for k, v in data.get("failing_tests", {}).items()},
            files=dict(data.get("files", {})),
            tools=dict(data.get("tools", {})),
            analyses=list(data.get("analyses", [])),
        )

    # -- folding -------------------------------------------------------------------------------
    def absorb(
        self, *, seq: int, context_type: ContextType, content: str, metadata: dict[str, Any], agent: str
    ) -> None:
        """Fold one appended entry into the digest."""
        self.entry_count = max(self.entry_count, seq)
        self.counts[context_type.value] = self.counts.get(context_type.value, 0) + 1
        if agent not in self.agents and len(self.agents) < MAX_AGENTS:
            self.agents.append(agent)

        kind = metadata.get("kind")
        kind = kind if isinstance(kind, str) and kind in _EXPLICIT_KINDS else None

        if context_type is ContextType.MESSAGE:
            self._absorb_message(seq, content, metadata, agent, kind)
        elif context_type is ContextType.FILE:
            self._absorb_file(seq, content, metadata)
        elif context_type is ContextType.TOOL_CALL:
            self._absorb_tool_call(seq, content, metadata)

        if kind is not None and kind != "request":
            self._record(kind, Item(seq, snippet(content), agent))
        elif context_type in (ContextType.MESSAGE, ContextType.SYSTEM):
            self._scan_markers(seq, content, agent)
        if context_type in (ContextType.TOOL_CALL, ContextType.SYSTEM):
            self._scan_test_results(seq, content)

    def _absorb_message(self, seq: int, content: str, metadata: dict[str, Any], agent: str, kind: str | None) -> None:
        role = (_first_str(metadata, "role") or "").lower()[:40]
        item = Item(seq, snippet(content), agent)
        if role == "user" or kind == "request":
            self.last_request = item
            if self.first_request is None:
                self.first_request = item
        label = f"{role or 'message'}"
        self.recent.append(Item(seq, snippet(content), f"{agent} ({label})" if role else agent))
        del self.recent[:-MAX_RECENT]

    def _absorb_file(self, seq: int, content: str, metadata: dict[str, Any]) -> None:
        summary = metadata.get("summary")
        if metadata.get("kind") == "analysis" and isinstance(summary, dict):
            self._absorb_analysis(seq, metadata, summary)
            return
        path = _first_str(metadata, "path", "file_path", "file", "filename") or "(unnamed file)"
        action = _first_str(metadata, "action", "operation") or "touched"
        info = self.files.pop(path, {"count": 0, "actions": []})
        info["count"] = int(info.get("count", 0)) + 1
        info["last_seq"] = seq
        actions = list(info.get("actions", []))
        if action not in actions:
            actions.append(action)
        info["actions"] = actions[-4:]
        self.files[path] = info  # re-inserted last: dict order is recency order
        while len(self.files) > MAX_FILES:
            self.files.pop(next(iter(self.files)))

    def _absorb_analysis(self, seq: int, metadata: dict[str, Any], summary: dict[str, Any]) -> None:
        """An analyze_codebase result: which files were analysed and their key symbols."""

        def strings(key: str, cap: int) -> list[str]:
            value = summary.get(key)
            return [str(v)[:SNIPPET_CHARS] for v in value[:cap]] if isinstance(value, list) else []

        languages = summary.get("languages")
        count = summary.get("file_count")
        errors = summary.get("error_count")
        self.analyses.append(
            {
                "seq": seq,
                "analysis_type": str(metadata.get("analysis_type", "analysis"))[:40],
                "files": strings("files", MAX_ANALYSIS_FILES),
                "file_count": count if isinstance(count, int) else len(strings("files", 1000)),
                "languages": {str(k)[:40]: v for k, v in languages.items() if isinstance(v, int)}
                if isinstance(languages, dict)
                else {},
                "top_symbols": strings("top_symbols", MAX_ANALYSIS_SYMBOLS),
                "error_count": errors if isinstance(errors, int) else 0,
            }
        )
        del self.analyses[:-MAX_ANALYSES]

    def _absorb_tool_call(self, seq: int, content: str, metadata: dict[str, Any]) -> None:
        name = _first_str(metadata, "tool", "tool_name", "name") or _tool_name_from_json(content) or "(tool)"
        failed = (
            str(metadata.get("status", "")).lower() in {"error", "failed", "failure"}
            or metadata.get("is_error") is True
            or (isinstance(metadata.get("exit_code"), int) and metadata["exit_code"] != 0)
        )
        info = self.tools.pop(name, {"count": 0, "errors": 0})
        info["count"] += 1
        info["errors"] += int(failed)
        info["last_seq"] = seq
        self.tools[name] = info
        while len(self.tools) > MAX_TOOLS:
            self.tools.pop(next(iter(self.tools)))

    def _scan_markers(self, seq: int, content: str, agent: str) -> None:
        # Bounded scan: markers live in prose, not in megabytes of pasted output.
        for line in content[:20_000].splitlines():
            for kind, pattern in _MARKERS:
                match = pattern.match(line)
                if match:
                    self._record(kind, Item(seq, snippet(match.group(1)), agent))
                    break

    def _scan_test_results(self, seq: int, content: str) -> None:
        for outcome, test_id in _TEST_RESULT.findall(content[:200_000]):
            test = test_id[:SNIPPET_CHARS]
            if outcome == "PASSED":
                self.failing_tests.pop(test, None)
            else:
                self.failing_tests.pop(test, None)
                self.failing_tests[test] = seq
        while len(self.failing_tests) > MAX_FAILING:
            self.failing_tests.pop(next(iter(self.failing_tests)))

    def _record(self, kind: str, item: Item) -> None:
        if kind == "decision":
            _push(self.decisions, item, MAX_DECISIONS)
        elif kind == "rejected":
            _push(self.rejected, item, MAX_REJECTED)
        elif kind == "task":
            self.open_tasks = [t for t in self.open_tasks if _norm(t.text) != _norm(item.text)]
            _push(self.open_tasks, item, MAX_TASKS)
        elif kind == "task_done":
            self.open_tasks = [t for t in self.open_tasks if _norm(t.text) != _norm(item.text)]
        elif kind == "test_failure":
            self.failing_tests.pop(item.text, None)
            self.failing_tests[item.text] = item.seq
        elif kind == "test_pass":
            self.failing_tests.pop(item.text, None)


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    flat = " ".join(text[: limit * 4].split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _push(items: list[Item], item: Item, cap: int) -> None:
    items.append(item)
    del items[:-cap]


def _norm(text: str) -> str:
    return " ".join(text.lower().rstrip(".…").split())


def _first_str(metadata: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:300]
    return None


def _tool_name_from_json(content: str) -> str | None:
    text = content.lstrip()
    if not text.startswith("{") or len(text) > 1_000_000:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict):
        return _first_str(data, "tool", "tool_name", "name")
    return None
