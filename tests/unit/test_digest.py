"""Folding entries into the digest: what real agent work leaves behind, bounded whatever comes in."""

from __future__ import annotations

import json
import random
from typing import Any

from handoff.domain.digest import Digest
from handoff.domain.models import ContextType

M, F, T, S = ContextType.MESSAGE, ContextType.FILE, ContextType.TOOL_CALL, ContextType.SYSTEM


def fold(entries: list[tuple[ContextType, str, dict[str, Any]]], agent: str = "claude") -> Digest:
    digest = Digest()
    for seq, (kind, content, metadata) in enumerate(entries, start=1):
        digest.absorb(seq=seq, context_type=kind, content=content, metadata=metadata, agent=agent)
        digest = Digest.from_json(digest.to_json())  # the server reloads it between appends
    return digest


def test_the_first_substantive_user_message_is_the_task_kept_whole() -> None:
    long_request = (
        "Migrate the billing service to PostgreSQL 16. "
        + "Keep every report identical. " * 40
        + "Do not drop the legacy_invoices table."
    )
    digest = fold([(M, "model_reasoning_effort=high", {"role": "user"}), (M, long_request, {"role": "user"})])
    assert digest.first_request is not None and digest.first_request.seq == 2
    assert "legacy_invoices" in digest.first_request.text  # not cut at 300 characters


def test_a_task_inside_harness_instructions_is_taken_from_its_tag() -> None:
    prompt = (
        "<pr_description>\nMod(3*i, 2) should reduce to Mod(i, 2).\n</pr_description>\n<instructions>\n"
        "# Task Instructions\nDO NOT MODIFY: Tests, configuration files.\nTHOUGHT: I need to look first.\n</instructions>"
    )
    digest = fold([(M, prompt, {"role": "user"})])
    assert digest.first_request is not None and digest.first_request.text == "Mod(3*i, 2) should reduce to Mod(i, 2)."
    texts = [s.text for s in digest.top]
    assert any("DO NOT MODIFY" in t for t in texts)
    assert not any(t.startswith(("THOUGHT", "I need to look")) for t in texts)


def test_low_information_follow_ups_do_not_replace_the_last_real_request() -> None:
    digest = fold(
        [
            (M, "Add retries to the uploader", {"role": "user"}),
            (M, "Also make the retry count configurable via UPLOAD_RETRIES", {"role": "user"}),
            (M, "ok, go on", {"role": "user"}),
        ]
    )
    assert digest.last_request is not None and "UPLOAD_RETRIES" in digest.last_request.text
    assert digest.last_user is not None and digest.last_user.text == "ok, go on"


def test_prose_decisions_rejections_and_user_vetoes_are_found_without_markers() -> None:
    digest = fold(
        [
            (M, "Fix the flaky export. Don't touch the public API in billing/client.py.", {"role": "user"}),
            (M, "The root cause is that export_rows() reads the cursor twice.", {"role": "assistant"}),
            (
                M,
                "I tried caching the rows in memory but that didn't work with 2 GB exports, so I reverted it.",
                {"role": "assistant"},
            ),
            (M, "Let me look at the file.", {"role": "assistant"}),
        ]
    )
    by_category = {s.category: s for s in digest.top}
    assert "export_rows()" in by_category["finding"].text
    assert "reverted" in by_category["rejected"].text
    assert "billing/client.py" in by_category["constraint"].text and by_category["constraint"].role == "user"
    assert not any(s.text == "Let me look at the file." for s in digest.top)


def test_line_markers_and_explicit_kinds_still_work() -> None:
    digest = fold(
        [
            (M, "Decision: use WAL\nTODO: write docs\nDONE: write docs\nTODO: bench it", {}),
            (M, "Use an LRU", {"kind": "decision"}),
            (T, "tests/test_x.py::test_y", {"kind": "test_failure"}),
        ]
    )
    assert {"use WAL", "Use an LRU"} <= {s.text for s in digest.top if s.category == "decision"}
    assert [p["text"] for p in digest.open_plan_items()] == ["bench it"]
    assert [t for t, _ in digest.failing_tests()] == ["tests/test_x.py::test_y"]


def test_latest_test_status_wins_and_a_green_run_clears_earlier_failures() -> None:
    failing = "FAILED tests/test_a.py::test_one - AssertionError\nFAILED tests/test_a.py::test_two\n2 failed, 5 passed in 1.0s"
    digest = fold([(T, failing, {"tool": "bash", "command": "pytest -q"})])
    assert {t for t, _ in digest.failing_tests()} == {"tests/test_a.py::test_one", "tests/test_a.py::test_two"}
    digest = fold(
        [
            (T, failing, {"tool": "bash", "command": "pytest -q"}),
            (
                T,
                "tests/test_a.py::test_one PASSED [100%]",
                {"tool": "bash", "command": "pytest -v tests/test_a.py::test_one"},
            ),
        ]
    )
    assert [t for t, _ in digest.failing_tests()] == ["tests/test_a.py::test_two"]
    digest = fold([(T, failing, {"tool": "bash"}), (T, "7 passed in 1.1s", {"tool": "bash", "command": "pytest -q"})])
    assert digest.failing_tests() == []
    assert {t for t, _ in digest.fixed_tests()} == {"tests/test_a.py::test_one", "tests/test_a.py::test_two"}
    assert digest.test_command is not None and digest.test_command["cmd"] == "pytest -q"


def test_commands_keep_their_exit_status_from_a_separate_output_entry() -> None:
    digest = fold(
        [
            (
                T,
                "$ python manage.py migrate",
                {
                    "tool": "Bash",
                    "tool_use_id": "t1",
                    "phase": "call",
                    "input": {"command": "python manage.py migrate"},
                },
            ),
            (
                T,
                "Traceback (most recent call last):\n  File \"x.py\", line 3, in <module>\nKeyError: 'DATABASE_URL'",
                {"tool": "Bash", "tool_use_id": "t1", "is_error": True},
            ),
        ]
    )
    assert digest.commands[-1]["cmd"] == "python manage.py migrate" and digest.commands[-1]["exit"] == 1
    assert digest.errors[-1]["text"] == "KeyError: 'DATABASE_URL'"


def test_mini_swe_agent_commands_in_messages_and_outputs_as_user_turns() -> None:
    digest = fold(
        [
            (M, "THOUGHT: run the tests.\n\n```bash\npython tests/runtests.py utils_tests\n```", {"role": "assistant"}),
            (
                M,
                "<returncode>1</returncode>\n<output>\nFAIL: test_escape (utils_tests.test_html.TestUtilsHtml)\nRan 16 tests in 0.01s\n\nFAILED (failures=1)\n</output>",
                {"role": "user"},
            ),
        ]
    )
    assert digest.commands[-1]["cmd"] == "python tests/runtests.py utils_tests" and digest.commands[-1]["exit"] == 1
    assert [t for t, _ in digest.failing_tests()] == ["utils_tests.test_html.TestUtilsHtml.test_escape"]
    assert digest.requests == []  # the observation is not a user request


def test_each_file_keeps_its_last_action_and_what_it_changed() -> None:
    digest = fold(
        [
            (
                F,
                "+def escape(text):\n+    return html.escape(text)",
                {"path": "django/utils/html.py", "action": "edited"},
            ),
            (
                T,
                "$ git checkout -- django/utils/html.py",
                {"tool": "bash", "command": "git checkout -- django/utils/html.py"},
            ),
            (T, "", {"tool": "Write", "input": {"file_path": "notes.md", "content": "# Notes\nfirst line"}}),
        ]
    )
    html = digest.files["django/utils/html.py"]
    assert html["a"] == "reverted" and [a for a, _ in html["h"]] == ["edited", "reverted"]
    assert digest.files["notes.md"]["a"] == "written" and "first line" in digest.files["notes.md"]["g"]


def test_plans_from_todowrite_update_plan_task_tools_and_checklists() -> None:
    todo = {
        "todos": [
            {"content": "Port formatDate", "status": "completed", "activeForm": "x"},
            {"content": "Port tz.ts", "status": "in_progress"},
        ]
    }
    digest = fold([(T, json.dumps(todo), {"tool": "TodoWrite"})])
    assert [(p["text"], p["status"]) for p in digest.plan] == [
        ("Port formatDate", "completed"),
        ("Port tz.ts", "in_progress"),
    ]
    plan = {"plan": [{"step": "Fix lexer", "status": "in_progress"}], "explanation": "lexer first"}
    digest = fold([(T, "", {"tool": "update_plan", "input": plan})])
    assert digest.plan[0]["text"] == "Fix lexer" and digest.plan_note == "lexer first"
    digest = fold(
        [
            (
                T,
                "",
                {
                    "tool": "TaskCreate",
                    "tool_use_id": "c1",
                    "phase": "call",
                    "input": {"subject": "Write migration", "description": "0042"},
                },
            ),
            (T, "Task #1 created successfully: Write migration", {"tool": "TaskCreate", "tool_use_id": "c1"}),
            (T, "", {"tool": "TaskUpdate", "input": {"taskId": "1", "status": "completed"}}),
        ]
    )
    assert [(p["id"], p["status"]) for p in digest.plan] == [("1", "completed")]
    digest = fold([(T, "", {"tool": "ExitPlanMode", "input": {"plan": "## Plan\n1. Add the table\n2. Backfill"}})])
    assert digest.plan_text is not None and "Backfill" in digest.plan_text.text
    digest = fold([(M, "Status:\n- [x] schema\n- [ ] backfill\n- [ ] switch reads", {"role": "assistant"})])
    assert [p["status"] for p in digest.plan] == ["completed", "pending", "pending"]


def test_digest_round_trips_and_stays_bounded_over_thousands_of_entries() -> None:
    rng = random.Random(7)
    digest = Digest()
    for seq in range(1, 5001):
        kind = rng.choice([M, F, T, S])
        n = rng.randint(0, 10**6)
        content = {
            M: f"The root cause is bug_{n} in module_{n}.py; I'll fix parse_{n}() instead of rewriting it.",
            F: f"+line {n}",
            T: f"FAILED tests/t_{n}.py::test_{n} - Error\n1 failed in 0.1s",
            S: f"TODO: task {n}",
        }[kind]
        meta = {"role": rng.choice(["user", "assistant"])} if kind is M else {"path": f"f{n}.py", "action": "edited"}
        digest.absorb(seq=seq, context_type=kind, content=content, metadata=meta, agent="a")
    size = len(digest.to_json())
    assert size < 120_000, size
    again = Digest.from_json(digest.to_json())
    assert again.to_json() == digest.to_json()


def test_a_version_1_digest_loads_into_the_new_shape() -> None:
    old = {
        "entry_count": 3,
        "counts": {"message": 3},
        "agents": ["a"],
        "first_request": {"seq": 1, "text": "do it", "agent": "a"},
        "last_request": None,
        "recent": [],
        "decisions": [{"seq": 2, "text": "use WAL", "agent": "a"}],
        "rejected": [],
        "open_tasks": [{"seq": 3, "text": "docs", "agent": "a"}],
        "failing_tests": {"t.py::x": 3},
        "files": {"a.py": {"count": 2, "actions": ["edit"], "last_seq": 2}},
        "tools": {"bash": {"count": 1, "errors": 0}},
        "analyses": [],
    }
    digest = Digest.from_json(json.dumps(old))
    assert digest.first_request is not None and digest.first_request.text == "do it"
    assert [s.text for s in digest.top] == ["use WAL"] and [p["text"] for p in digest.plan] == ["docs"]
    assert [t for t, _ in digest.failing_tests()] == ["t.py::x"] and digest.files["a.py"]["a"] == "edit"


def test_any_language_and_odd_text_never_break_folding() -> None:
    odd = [
        "数据库迁移失败，因为缺少索引。我决定改用 WAL。",
        "ʕ•ᴥ•ʔ " * 500,
        "\u202eevil\u202c",
        "a" * 300_000,
        "```\nunclosed fence",
        "🙂" * 1000,
    ]
    digest = fold([(M, text, {"role": role}) for text in odd for role in ("user", "assistant")])
    assert Digest.from_json(digest.to_json()).entry_count == len(odd) * 2
