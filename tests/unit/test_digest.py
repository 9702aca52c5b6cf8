"""Folding entries into the bounded session digest that the brief is rendered from."""

from __future__ import annotations

import json
import random
from typing import Any

from handoff.domain import digest as digest_module
from handoff.domain.digest import Digest, snippet
from handoff.domain.models import ContextType

MSG, FILE, TOOL, SYSTEM = ContextType.MESSAGE, ContextType.FILE, ContextType.TOOL_CALL, ContextType.SYSTEM


class Feeder:
    """Appends entries to a digest with increasing sequence numbers, like the service does."""

    def __init__(self, digest: Digest | None = None) -> None:
        self.digest = digest or Digest()
        self.seq = self.digest.entry_count

    def __call__(
        self, context_type: ContextType, content: str, metadata: dict[str, Any] | None = None, agent: str = "alice"
    ) -> int:
        self.seq += 1
        self.digest.absorb(
            seq=self.seq, context_type=context_type, content=content, metadata=metadata or {}, agent=agent
        )
        return self.seq


def texts(items: list[Any]) -> list[str]:
    return [item.text for item in items]


def test_empty_digest_round_trips_from_nothing() -> None:
    assert Digest.from_json(None) == Digest()
    assert Digest.from_json("") == Digest()
    assert Digest.from_json("{}") == Digest()


def test_counts_entry_count_and_agents_are_tracked() -> None:
    feed = Feeder()
    feed(MSG, "hi", agent="alice")
    feed(FILE, "x", {"path": "a.py"}, agent="bob")
    feed(MSG, "again", agent="alice")
    d = feed.digest
    assert d.entry_count == 3
    assert d.counts == {"message": 2, "file": 1}
    assert d.agents == ["alice", "bob"]


def test_line_markers_in_messages_become_decisions_tasks_and_rejections() -> None:
    feed = Feeder()
    feed(
        MSG,
        "Plan for today:\n- Decision: use WAL mode\n* TODO: add retries\nRejected: a global lock\n"
        "decided: keep SQLite as default\nnot a marker: Decision: inside a line",
    )
    d = feed.digest
    assert texts(d.decisions) == ["use WAL mode", "keep SQLite as default"]
    assert texts(d.open_tasks) == ["add retries"]
    assert texts(d.rejected) == ["a global lock"]
    assert all(item.seq == 1 and item.agent == "alice" for item in [*d.decisions, *d.open_tasks, *d.rejected])


def test_system_entries_are_scanned_for_markers_but_files_are_not() -> None:
    feed = Feeder()
    feed(SYSTEM, "Decision: from a system note")
    feed(FILE, "Decision: this is file content, not a decision", {"path": "notes.md"})
    feed(TOOL, "TODO: tool output is not a task", {"tool": "grep"})
    assert texts(feed.digest.decisions) == ["from a system note"]
    assert feed.digest.open_tasks == []


def test_done_marker_closes_an_open_task_ignoring_case_and_trailing_dot() -> None:
    feed = Feeder()
    feed(MSG, "TODO: Add retries\nTODO: write docs")
    feed(MSG, "DONE: add   retries.")
    assert texts(feed.digest.open_tasks) == ["write docs"]


def test_repeated_todo_is_kept_once_with_the_latest_sequence() -> None:
    feed = Feeder()
    feed(MSG, "TODO: write docs")
    second = feed(MSG, "todo: Write docs")
    assert [(t.text, t.seq) for t in feed.digest.open_tasks] == [("Write docs", second)]


def test_metadata_kind_overrides_marker_scanning() -> None:
    feed = Feeder()
    feed(MSG, "Use PostgreSQL in production\nTODO: not scanned", {"kind": "decision"})
    feed(MSG, "ship the release", {"kind": "task"})
    feed(MSG, "ship the release", {"kind": "task_done"})
    feed(MSG, "monkeypatching time", {"kind": "rejected"})
    d = feed.digest
    assert texts(d.decisions) == ["Use PostgreSQL in production TODO: not scanned"]
    assert d.open_tasks == []
    assert texts(d.rejected) == ["monkeypatching time"]


def test_unknown_or_non_string_kind_falls_back_to_markers() -> None:
    feed = Feeder()
    feed(MSG, "Decision: markers still count", {"kind": "something-else"})
    feed(MSG, "Decision: also here", {"kind": 7})
    assert texts(feed.digest.decisions) == ["markers still count", "also here"]


def test_user_messages_and_request_kind_set_first_and_last_request() -> None:
    feed = Feeder()
    feed(MSG, "assistant chatter", {"role": "assistant"})
    assert feed.digest.first_request is None
    first = feed(MSG, "Please fix the login bug", {"role": "user"}, agent="human")
    last = feed(MSG, "Also add a test", {"kind": "request"})
    d = feed.digest
    assert d.first_request is not None and (d.first_request.seq, d.first_request.text) == (
        first,
        "Please fix the login bug",
    )
    assert d.last_request is not None and (d.last_request.seq, d.last_request.text) == (last, "Also add a test")


def test_recent_messages_keep_only_the_last_few_with_role_labels() -> None:
    feed = Feeder()
    for i in range(digest_module.MAX_RECENT + 5):
        feed(MSG, f"message {i}", {"role": "assistant"} if i % 2 else {})
    feed(FILE, "not a message", {"path": "x.py"})
    recent = feed.digest.recent
    assert len(recent) == digest_module.MAX_RECENT
    expected = list(range(5, digest_module.MAX_RECENT + 5))
    assert texts(recent) == [f"message {i}" for i in expected]
    assert [r.agent for r in recent] == ["alice (assistant)" if i % 2 else "alice" for i in expected]


def test_pytest_failed_lines_add_failing_tests_and_passed_lines_clear_them() -> None:
    feed = Feeder()
    first = feed(
        TOOL,
        "===== short test summary =====\nFAILED tests/test_a.py::test_one - AssertionError\n"
        "ERROR tests/test_b.py::test_two\nPASSED tests/test_c.py::test_ok",
        {"tool": "pytest"},
    )
    assert feed.digest.failing_tests == {"tests/test_a.py::test_one": first, "tests/test_b.py::test_two": first}
    second = feed(SYSTEM, "PASSED tests/test_a.py::test_one\nFAILED tests/test_b.py::test_two")
    assert feed.digest.failing_tests == {"tests/test_b.py::test_two": second}


def test_test_results_in_messages_are_not_scanned() -> None:
    feed = Feeder()
    feed(MSG, "FAILED tests/test_a.py::test_one")
    assert feed.digest.failing_tests == {}


def test_explicit_test_failure_and_pass_kinds() -> None:
    feed = Feeder()
    seq = feed(MSG, "tests/test_x.py::test_y", {"kind": "test_failure"})
    assert feed.digest.failing_tests == {"tests/test_x.py::test_y": seq}
    feed(MSG, "tests/test_x.py::test_y", {"kind": "test_pass"})
    assert feed.digest.failing_tests == {}


def test_files_record_paths_actions_counts_in_recency_order() -> None:
    feed = Feeder()
    feed(FILE, "...", {"path": "src/a.py", "action": "read"})
    feed(FILE, "...", {"file_path": "src/b.py", "operation": "created"})
    last = feed(FILE, "...", {"path": "src/a.py", "action": "edited"})
    feed(FILE, "...", {})
    files = feed.digest.files
    assert list(files) == ["src/b.py", "src/a.py", "(unnamed file)"]
    assert files["src/a.py"] == {"count": 2, "last_seq": last, "actions": ["read", "edited"]}
    assert files["src/b.py"]["actions"] == ["created"]
    assert files["(unnamed file)"]["actions"] == ["touched"]


def test_file_actions_keep_the_last_four_distinct() -> None:
    feed = Feeder()
    for action in ["read", "edited", "read", "moved", "renamed", "deleted", "created"]:
        feed(FILE, "", {"path": "f.py", "action": action})
    assert feed.digest.files["f.py"]["actions"] == ["moved", "renamed", "deleted", "created"]
    assert feed.digest.files["f.py"]["count"] == 7


def test_tool_calls_are_counted_with_errors() -> None:
    feed = Feeder()
    feed(TOOL, "ok", {"tool": "pytest"})
    feed(TOOL, "boom", {"tool": "pytest", "status": "FAILED"})
    feed(TOOL, "boom", {"tool_name": "bash", "exit_code": 2})
    feed(TOOL, "fine", {"name": "bash", "exit_code": 0})
    feed(TOOL, "err", {"tool": "bash", "is_error": True})
    feed(TOOL, '{"tool": "search", "query": "x"}')
    feed(TOOL, "no name at all")
    tools = feed.digest.tools
    assert {name: (info["count"], info["errors"]) for name, info in tools.items()} == {
        "pytest": (2, 1),
        "bash": (3, 2),
        "search": (1, 0),
        "(tool)": (1, 0),
    }


def test_snippets_are_single_line_and_capped() -> None:
    long = "word " * 500
    cut = snippet(long)
    assert len(cut) <= digest_module.SNIPPET_CHARS
    assert cut.endswith("…")
    assert snippet("a\n\n b\tc") == "a b c"


def test_json_round_trip_preserves_everything() -> None:
    feed = Feeder()
    feed(MSG, "Fix 漢字 handling\nDecision: keep UTF-8 ✓", {"role": "user"})
    feed(MSG, "TODO: tests\nRejected: latin-1")
    feed(FILE, "", {"path": "src/ü.py", "action": "edited"})
    feed(TOOL, "FAILED tests/t.py::test_x", {"tool": "pytest", "exit_code": 1})
    raw = feed.digest.to_json()
    restored = Digest.from_json(raw)
    assert restored == feed.digest
    assert restored.to_json() == raw
    assert "漢字" in raw  # stored as text, not \\u escapes
    # Folding continues identically after a round trip.
    a, b = Feeder(feed.digest), Feeder(restored)
    for f in (a, b):
        f(MSG, "DONE: tests", agent="bob")
    assert a.digest == b.digest


def _random_entry(rng: random.Random, i: int) -> tuple[ContextType, str, dict[str, Any], str]:
    words = ["alpha", "beta", "gamma", "delta", "漢字", "émoji🙂", "retry", "cache"]
    text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 120)))
    kind = rng.choice(list(ContextType))
    agent = f"agent-{rng.randint(0, 40)}"
    if kind is ContextType.MESSAGE:
        marker = rng.choice(["Decision: ", "TODO: ", "DONE: ", "Rejected: ", ""])
        return kind, f"{marker}{text} {i}", {"role": rng.choice(["user", "assistant", ""])}, agent
    if kind is ContextType.FILE:
        return kind, text, {"path": f"src/mod_{i % 97}.py", "action": rng.choice(["read", "edited"])}, agent
    if kind is ContextType.TOOL_CALL:
        return kind, f"FAILED tests/t_{i}.py::test_{i}\n{text}", {"tool": f"tool_{i % 60}"}, agent
    return kind, f"PASSED tests/t_{i - 1}.py::test_{i - 1}\n{text}", {}, agent


def test_digest_stays_bounded_over_thousands_of_entries() -> None:
    rng = random.Random(20250101)
    feed = Feeder()
    sizes = []
    for i in range(3000):
        feed(*_random_entry(rng, i))
        if i % 300 == 299:
            sizes.append(len(feed.digest.to_json()))
    d = feed.digest
    assert d.entry_count == 3000
    assert sum(d.counts.values()) == 3000
    assert len(d.recent) <= digest_module.MAX_RECENT
    assert len(d.decisions) <= digest_module.MAX_DECISIONS
    assert len(d.rejected) <= digest_module.MAX_REJECTED
    assert len(d.open_tasks) <= digest_module.MAX_TASKS
    assert len(d.failing_tests) <= digest_module.MAX_FAILING
    assert len(d.files) == digest_module.MAX_FILES
    assert len(d.tools) == digest_module.MAX_TOOLS
    assert len(d.agents) == digest_module.MAX_AGENTS
    # The size plateaus: the last half of the run does not grow the digest.
    assert max(sizes[5:]) <= max(sizes[:5]) * 1.25
    assert sizes[-1] < 48 * 1024


def test_digest_stays_bounded_with_adversarially_long_fields() -> None:
    # Every text the digest keeps should be capped, whatever the caller sends: the digest is read
    # and rewritten on every append, so an unbounded field slows every later append.
    feed = Feeder()
    huge = "x" * 60_000
    for i in range(50):
        feed(MSG, f"Decision: {huge}\nTODO: {huge}{i}\nRejected: {huge}", {"role": "user"})
        feed(FILE, huge, {"path": f"{i}{huge}", "action": f"{i}{huge}"})
        feed(TOOL, huge, {"tool": f"{i}{huge}"})
    size = len(feed.digest.to_json())
    assert size < 128 * 1024


def test_long_pytest_node_ids_do_not_bloat_the_digest() -> None:
    feed = Feeder()
    for i in range(digest_module.MAX_FAILING):
        feed(TOOL, f"FAILED tests/test_{i}.py::test_{'x' * 100_000}", {"tool": "pytest"})
    size = len(feed.digest.to_json())
    assert size < 128 * 1024


def test_long_role_label_does_not_bloat_recent_messages() -> None:
    feed = Feeder()
    for _ in range(digest_module.MAX_RECENT):
        feed(MSG, "hello", {"role": "r" * 30_000})
    size = len(feed.digest.to_json())
    assert size < 32 * 1024


def test_digest_json_is_plain_json_object() -> None:
    feed = Feeder()
    feed(MSG, "Decision: x")
    data = json.loads(feed.digest.to_json())
    assert data["entry_count"] == 1
    assert data["decisions"] == [{"seq": 1, "text": "x", "agent": "alice"}]
