"""A bounded running digest of a session, folded one entry at a time.

The handoff brief is rendered from this digest (plus a bounded read of the newest entries), so a
handoff on a session with 100,000 entries reads one small row instead of the whole history. Each
append folds its entry in (same transaction), and every list here is capped, so the digest stays a
few tens of KiB whatever the session's size. What it keeps is what the next agent needs: the task
in the user's words, later requests and constraints, the salient sentences of the prose, the plan
and to-do list, the latest status of every test, the commands that ran and how they ended, the
last errors, and each file's last action. `folding.py` decides what goes in; this module holds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from handoff.domain.models import ContextType

SNIPPET_CHARS = 300
FIRST_REQUEST_CHARS = 6_000
REQUEST_CHARS = 1_500
MAX_REQUESTS = 8
MAX_TOP_SALIENT = 36
MAX_RECENT_SALIENT = 14
MAX_PLAN_ITEMS = 40
MAX_TESTS = 40
MAX_RUNS = 6
MAX_COMMANDS = 14
MAX_ERRORS = 6
MAX_FILES = 40
MAX_TOOLS = 25
MAX_AGENTS = 20
MAX_ANALYSES = 5
MAX_ANALYSIS_FILES = 12
MAX_ANALYSIS_SYMBOLS = 15
MAX_PENDING_CALLS = 16
MAX_DELEGATED = 8
MAX_STEPS = 30
DIGEST_VERSION = 2


@dataclass(slots=True)
class Item:
    seq: int
    text: str
    agent: str = ""

    def dump(self) -> dict[str, Any]:
        return {"seq": self.seq, "text": self.text, "agent": self.agent}

    @classmethod
    def load(cls, raw: dict[str, Any]) -> Item:
        return cls(seq=int(raw["seq"]), text=str(raw["text"]), agent=str(raw.get("agent", "")))


@dataclass(slots=True)
class Sentence:
    """A salient sentence: where it was said, by whom, what kind, how much it matters."""

    seq: int
    text: str
    category: str
    score: float
    role: str = ""

    def dump(self) -> dict[str, Any]:
        return {"q": self.seq, "t": self.text, "c": self.category, "s": self.score, "r": self.role}

    @classmethod
    def load(cls, raw: dict[str, Any]) -> Sentence:
        return cls(int(raw["q"]), str(raw["t"]), str(raw["c"]), float(raw["s"]), str(raw.get("r", "")))


@dataclass(slots=True)
class Digest:
    entry_count: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    agents: list[str] = field(default_factory=list)
    first_request: Item | None = None
    # User messages after the first one, newest last (each capped); `last_request` is the newest
    # message that says something, `last_user` the newest at all ("ok, go on").
    requests: list[Item] = field(default_factory=list)
    last_request: Item | None = None
    last_user: Item | None = None
    top: list[Sentence] = field(default_factory=list)
    recent: list[Sentence] = field(default_factory=list)
    # Plan items: {"id", "text", "status", "seq"}; plan_text: the latest plan document.
    plan: list[dict[str, Any]] = field(default_factory=list)
    plan_text: Item | None = None
    plan_note: str = ""
    tasks_created: int = 0
    # test id -> {"s": status, "q": seq, "d": detail, "f": seq it last failed or 0}
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    test_command: dict[str, Any] | None = None
    commands: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    # path -> {"a": last action, "q": last seq, "n": count, "h": [[action, seq], …] last few}
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    tools: dict[str, dict[str, int]] = field(default_factory=dict)
    analyses: list[dict[str, Any]] = field(default_factory=list)
    # What happened, in order: {"q", "k" (ask|change|run|fail|commit), "key", "t", "n"}, oldest first.
    steps: list[dict[str, Any]] = field(default_factory=list)
    # Work handed to subagents: {"id", "q", "what", "ask", "done" (seq or 0), "said"}, oldest first.
    delegated: list[dict[str, Any]] = field(default_factory=list)
    # Tool calls whose output has not arrived yet: call id -> {"tool", "cmd", "q"}.
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_command: dict[str, Any] | None = None
    last_reply: int = 0  # the agent's latest message in the current turn

    # -- persistence ---------------------------------------------------------------------------
    def to_json(self) -> str:
        # Built by hand: dataclasses.asdict deep-copies, and this runs on every append.
        def item(value: Item | None) -> dict[str, Any] | None:
            return None if value is None else value.dump()

        data = {
            "v": DIGEST_VERSION,
            "entry_count": self.entry_count,
            "counts": self.counts,
            "agents": self.agents,
            "first_request": item(self.first_request),
            "requests": [r.dump() for r in self.requests],
            "last_request": item(self.last_request),
            "last_user": item(self.last_user),
            "top": [s.dump() for s in self.top],
            "recent": [s.dump() for s in self.recent],
            "plan": self.plan,
            "plan_text": item(self.plan_text),
            "plan_note": self.plan_note,
            "tasks_created": self.tasks_created,
            "tests": self.tests,
            "runs": self.runs,
            "test_command": self.test_command,
            "commands": self.commands,
            "errors": self.errors,
            "files": self.files,
            "tools": self.tools,
            "analyses": self.analyses,
            "delegated": self.delegated,
            "steps": self.steps,
            "pending": self.pending,
            "last_command": self.last_command,
            "last_reply": self.last_reply,
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | None) -> Digest:
        if not raw:
            return cls()
        data = json.loads(raw)
        if data.get("v") != DIGEST_VERSION:
            return _from_version_1(data)

        def item(value: Any) -> Item | None:
            return Item.load(value) if value else None

        return cls(
            entry_count=int(data.get("entry_count", 0)),
            counts=dict(data.get("counts", {})),
            agents=list(data.get("agents", [])),
            first_request=item(data.get("first_request")),
            requests=[Item.load(v) for v in data.get("requests", [])],
            last_request=item(data.get("last_request")),
            last_user=item(data.get("last_user")),
            top=[Sentence.load(v) for v in data.get("top", [])],
            recent=[Sentence.load(v) for v in data.get("recent", [])],
            plan=list(data.get("plan", [])),
            plan_text=item(data.get("plan_text")),
            plan_note=str(data.get("plan_note", "")),
            tasks_created=int(data.get("tasks_created", 0)),
            tests=dict(data.get("tests", {})),
            runs=list(data.get("runs", [])),
            test_command=data.get("test_command"),
            commands=list(data.get("commands", [])),
            errors=list(data.get("errors", [])),
            files=dict(data.get("files", {})),
            tools=dict(data.get("tools", {})),
            analyses=list(data.get("analyses", [])),
            delegated=list(data.get("delegated", [])),
            steps=list(data.get("steps", [])),
            pending=dict(data.get("pending", {})),
            last_command=data.get("last_command"),
            last_reply=int(data.get("last_reply", 0)),
        )

    # -- folding -------------------------------------------------------------------------------
    def absorb(
        self, *, seq: int, context_type: ContextType, content: str, metadata: dict[str, Any], agent: str
    ) -> None:
        """Fold one appended entry into the digest."""
        from handoff.domain.folding import fold  # the rules live apart from the state they fill

        self.entry_count = max(self.entry_count, seq)
        self.counts[context_type.value] = self.counts.get(context_type.value, 0) + 1
        if agent not in self.agents and len(self.agents) < MAX_AGENTS:
            self.agents.append(agent)
        fold(self, seq=seq, context_type=context_type, content=content, metadata=metadata, agent=agent)

    # -- views the brief uses ------------------------------------------------------------------
    def failing_tests(self) -> list[tuple[str, dict[str, Any]]]:
        return [(t, info) for t, info in self.tests.items() if info.get("s") in ("failed", "error")]

    def fixed_tests(self) -> list[tuple[str, dict[str, Any]]]:
        return [(t, info) for t, info in self.tests.items() if info.get("s") == "passed" and info.get("f")]

    def open_plan_items(self) -> list[dict[str, Any]]:
        return [p for p in self.plan if p.get("status") in ("pending", "in_progress")]


def _from_version_1(data: dict[str, Any]) -> Digest:
    """Digests written before the salience rewrite: keep what maps, drop what does not."""

    def item(value: Any) -> Item | None:
        return Item.load(value) if value else None

    digest = Digest(
        entry_count=int(data.get("entry_count", 0)),
        counts=dict(data.get("counts", {})),
        agents=list(data.get("agents", [])),
        first_request=item(data.get("first_request")),
        last_request=item(data.get("last_request")),
        last_user=item(data.get("last_request")),
        analyses=list(data.get("analyses", [])),
    )
    for kind, category in (("decisions", "decision"), ("rejected", "rejected")):
        for raw in data.get(kind, []):
            old = Item.load(raw)
            digest.top.append(Sentence(old.seq, old.text, category, 5.0, "marker"))
    for raw in data.get("open_tasks", []):
        old = Item.load(raw)
        digest.plan.append({"id": "", "text": old.text, "status": "pending", "seq": old.seq})
    for test, seq in data.get("failing_tests", {}).items():
        digest.tests[str(test)] = {"s": "failed", "q": int(seq), "d": "", "f": int(seq)}
    for path, info in data.get("files", {}).items():
        actions = list(info.get("actions", [])) or ["touched"]
        seq = int(info.get("last_seq", 0))
        digest.files[str(path)] = {
            "a": actions[-1],
            "q": seq,
            "n": int(info.get("count", 1)),
            "h": [[actions[-1], seq]],
        }
    for name, info in data.get("tools", {}).items():
        digest.tools[str(name)] = {k: int(v) for k, v in info.items() if isinstance(v, int)}
    return digest
