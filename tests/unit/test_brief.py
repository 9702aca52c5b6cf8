"""Rendering the handoff brief: the note first, every section from real signals, the budget."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from handoff.domain.brief import MIN_TOKEN_BUDGET, BriefContext, estimate_tokens, render_brief
from handoff.domain.digest import Digest
from handoff.domain.models import ContextEntry, ContextType, EntryExcerpt, HandoffType
from handoff.domain.note import parse_note

M, F, T = ContextType.MESSAGE, ContextType.FILE, ContextType.TOOL_CALL


def context(request_data: dict[str, Any] | None = None, note: Any = None, **overrides: Any) -> BriefContext:
    values: dict[str, Any] = {
        "session_key": "proj-42",
        "source_agent": "claude",
        "target_agent": "codex",
        "handoff_type": HandoffType.FULL_HANDOFF,
        "request_data": request_data or {},
        "up_to_sequence": 0,
        "note": parse_note(note),
    }
    values.update(overrides)
    return BriefContext(**values)


def session(entries: list[tuple[ContextType, str, dict[str, Any]]]) -> tuple[Digest, list[EntryExcerpt]]:
    digest = Digest()
    rows = []
    for seq, (kind, content, metadata) in enumerate(entries, start=1):
        digest.absorb(seq=seq, context_type=kind, content=content, metadata=metadata, agent="claude")
        rows.append(ContextEntry(1, seq, kind, content, metadata, "claude", datetime.now(UTC), len(content), ""))
    return digest, [EntryExcerpt.of(r, 1500) for r in reversed(rows[-60:])]


WORK = [
    (M, "Build the CSV importer. Never load the whole file into memory.", {"role": "user"}),
    (M, "The root cause of the slowness is that parse_row() re-compiles its regex per row.", {"role": "assistant"}),
    (M, "I tried pandas first but that didn't work with 4 GB inputs, so I reverted it.", {"role": "assistant"}),
    (F, "+ROW = re.compile(r'...')", {"path": "src/importer.py", "action": "edited"}),
    (
        T,
        "FAILED tests/test_importer.py::test_bom - UnicodeError\n1 failed, 9 passed in 0.3s",
        {"tool": "bash", "command": "pytest -q"},
    ),
    (M, "Now also support gzip input", {"role": "user"}),
    (
        T,
        json.dumps(
            {
                "todos": [
                    {"content": "Handle the BOM", "status": "in_progress"},
                    {"content": "gzip input", "status": "pending"},
                ]
            }
        )
        if (json := __import__("json"))
        else "",
        {"tool": "TodoWrite"},
    ),
]


def test_a_brief_carries_the_work_from_real_signals() -> None:
    digest, tail = session(WORK)
    text = render_brief(digest, context(up_to_sequence=7), 2000, tail).text
    for must in (
        "Build the CSV importer",  # the task
        "Never load the whole file into memory",  # the user's constraint
        "gzip",  # the later request
        "parse_row()",  # the finding
        "pandas",  # the rejected approach
        "tests/test_importer.py::test_bom",  # the failing test
        "pytest -q",  # the test command
        "src/importer.py",  # the file
        "Handle the BOM",  # the open to-do
    ):
        assert must in text, must
    assert estimate_tokens(text) <= 2000


def test_the_agents_note_leads_and_the_extract_still_follows() -> None:
    digest, tail = session(WORK)
    note = {"goal": "Streaming CSV import", "next_steps": ["Fix test_bom by stripping \\ufeff"], "rejected": ["pandas"]}
    text = render_brief(digest, context(note=note), 2000, tail).text
    assert text.index("Handoff note from the agent") < text.index("Task (the user's request)")
    assert "Streaming CSV import" in text and "stripping" in text and "parse_row()" in text


def test_request_data_is_shown_with_the_note() -> None:
    digest, tail = session(WORK)
    assert "- ticket: CSV-12" in render_brief(digest, context({"ticket": "CSV-12"}), 2000, tail).text


def test_tool_calls_and_their_output_share_one_line_in_recent_activity() -> None:
    digest, tail = session(
        [
            (
                T,
                "$ make build",
                {"tool": "Bash", "tool_use_id": "a", "phase": "call", "input": {"command": "make build"}},
            ),
            (
                T,
                "gcc: error: missing.c: No such file or directory\nmake: *** [all] Error 1",
                {"tool": "Bash", "tool_use_id": "a", "is_error": True},
            ),
        ]
    )
    text = render_brief(digest, context(), 2000, tail).text
    line = next(line for line in text.splitlines() if line.startswith("- #1-2 "))
    assert "make build" in line and "error" in line


def test_the_brief_never_exceeds_the_budget_and_more_budget_never_says_less() -> None:
    rng = random.Random(3)
    words = ["migrate", "数据库", "the root cause is", "didn't work", "don't", "src/a.py", "test_x", "🙂", "FAILED"]
    for case in range(25):
        entries = []
        for _ in range(rng.randint(0, 80)):
            kind = rng.choice([M, F, T])
            text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 60)))
            meta = (
                {"role": rng.choice(["user", "assistant"])} if kind is M else {"path": "src/a.py", "action": "edited"}
            )
            entries.append((kind, text, meta))
        digest, tail = session(entries)
        ctx = context({"说明": "继续" * rng.randint(0, 50)})
        lengths = []
        for budget in [MIN_TOKEN_BUDGET, MIN_TOKEN_BUDGET + 1, 300, 1000, 2000, 4000, 8000]:
            rendered = render_brief(digest, ctx, budget, tail)
            assert rendered.tokens == estimate_tokens(rendered.text) <= budget, (case, budget)
            lengths.append(len(rendered.text.encode()))
        assert lengths == sorted(lengths), (case, lengths)


def test_headings_are_never_left_empty_and_rendering_is_deterministic() -> None:
    digest, tail = session(WORK)
    for budget in (120, 400, 900):
        text = render_brief(digest, context(), budget, tail).text
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if line.startswith("## "):
                assert i + 1 < len(lines) and lines[i + 1].strip(), (budget, line)
        assert render_brief(Digest.from_json(digest.to_json()), context(), budget, tail).text == text


@pytest.mark.parametrize("handoff_type", list(HandoffType))
def test_the_header_states_the_handoff_effect(handoff_type: HandoffType) -> None:
    text = render_brief(Digest(), context(handoff_type=handoff_type), 500).text
    assert handoff_type.value in text.split("\n")[1]


def test_a_tiny_budget_still_renders_within_it() -> None:
    digest, tail = session(WORK)
    rendered = render_brief(digest, context({"note": "x" * 500}), MIN_TOKEN_BUDGET, tail)
    assert rendered.tokens <= MIN_TOKEN_BUDGET and rendered.text.startswith("# Handoff brief")


def test_cjk_text_counts_one_token_per_character() -> None:
    assert estimate_tokens("数据库") == 3 and estimate_tokens("abc") == 1 and estimate_tokens("") == 0
    digest, tail = session([(M, "请把数据库迁移到预写日志模式，不要删除旧表。", {"role": "user"})])
    text = render_brief(digest, context(), 2000, tail).text
    assert "预写日志模式" in text


def test_summary_names_the_counts_and_the_last_request() -> None:
    digest, _ = session(WORK)
    summary = render_brief(digest, context(), 2000).summary
    assert "gzip" in summary and "1 failing tests" in summary


def test_each_changed_file_says_what_changed_and_shared_roots_are_printed_once() -> None:
    edit = {"file_path": "/home/me/proj/src/retry.py", "old_string": "RETRIES = 3", "new_string": "RETRIES = 5"}
    write = {"file_path": "/home/me/proj/src/backoff.py", "content": "def backoff(n):\n    return 2 ** n\n"}
    digest, tail = session(
        [
            (T, "Edit", {"tool": "Edit", "tool_use_id": "a", "phase": "call", "input": edit}),
            (T, "ok", {"tool": "Edit", "tool_use_id": "a"}),
            (T, "Write", {"tool": "Write", "tool_use_id": "b", "phase": "call", "input": write}),
            (T, "ok", {"tool": "Write", "tool_use_id": "b"}),
        ]
    )
    text = render_brief(digest, context(), 2000, tail).text
    files = text.split("## Files", 1)[1]
    assert "(paths under `/home/me/proj/src/`)" in files
    assert "- `retry.py`: edited #1: RETRIES = 5" in files
    assert "- `backoff.py`: written #3: defines backoff" in files


def test_a_run_of_read_only_commands_shares_one_line_in_recent_activity() -> None:
    entries: list[tuple[ContextType, str, dict[str, Any]]] = []
    for i, command in enumerate(["cat src/a.py", "grep -n parse src/b.py", "sed -n '1,40p' src/c.py"]):
        entries.append(
            (
                T,
                f"$ {command}",
                {"tool": "Bash", "tool_use_id": f"r{i}", "phase": "call", "input": {"command": command}},
            )
        )
        entries.append((T, "some file text", {"tool": "Bash", "tool_use_id": f"r{i}"}))
    entries.append((M, "The parser drops the BOM; I'll strip it in read_rows().", {"role": "assistant"}))
    digest, tail = session(entries)
    text = render_brief(digest, context(), 2000, tail).text
    looked = [line for line in text.splitlines() if "read-only calls" in line]
    assert looked == [
        "- #1-6 looked (3 read-only calls): `cat src/a.py` · `grep -n parse src/b.py` · `sed -n '1,40p' src/c.py`"
    ]


def test_running_subagents_lead_the_plan_and_finished_ones_say_what_they_found() -> None:
    ask = {
        "subagent_type": "general-purpose",
        "description": "Write the hook",
        "prompt": "Create useTodos with localStorage",
    }
    done = {"subagent_type": "Explore", "description": "Find the config", "prompt": "Where is the config loaded?"}
    digest, tail = session(
        [
            (T, "Task", {"tool": "Task", "tool_use_id": "d", "phase": "call", "input": done}),
            (T, "The config is loaded in src/config.ts by loadConfig().", {"tool": "Task", "tool_use_id": "d"}),
            (T, "Task", {"tool": "Task", "tool_use_id": "h", "phase": "call", "input": ask}),
        ]
    )
    plan = render_brief(digest, context(), 2000, tail).text.split("## Plan and to-do list", 1)[1]
    lines = [line for line in plan.splitlines() if line.startswith("- [")]
    assert lines[0].startswith("- [~] subagent running: Write the hook (#3): Create useTodos with localStorage")
    assert any(
        line.startswith("- [x] subagent: Find the config (Explore) (#1→#2): The config is loaded") for line in lines
    )


SUMMARY = """## Where this stands

The root cause was the regex compiled per row in parse_row(); it is now compiled once.
| # | question | decision |
|---|---|---|
| 1 | memory | stream rows with csv.reader, never read the whole file |
| 2 | BOM | strip it in open_source() with encoding='utf-8-sig' |
```python
ROW = re.compile(r"secret-code-never-shown")
```
Left: gzip input (test_gzip is still to write)."""


def test_the_agents_latest_account_is_quoted_whole_at_a_generous_budget() -> None:
    digest, tail = session([*WORK, (M, SUMMARY, {"role": "assistant"}), (T, "ls", {"tool": "bash", "command": "ls"})])
    text = render_brief(digest, context(), 2000, tail).text
    assert "## The agent's latest account (#" in text
    section = text.split("## The agent's latest account", 1)[1].split("\n## ", 1)[0]
    assert "> | 2 | BOM | strip it in open_source() with encoding='utf-8-sig' |" in section
    assert "> Left: gzip input (test_gzip is still to write)." in section
    assert "secret-code-never-shown" not in section  # fenced code is left out
    assert "|---|" not in section  # table rules carry nothing
    # A small brief has no room for it: the recent-activity line keeps its gist instead.
    assert "latest account" not in render_brief(digest, context(), 1000, tail).text


def test_the_latest_account_is_the_agents_own_words_not_a_subagents_or_a_users() -> None:
    entries = [
        *WORK,
        (M, SUMMARY, {"role": "assistant"}),
        (M, "A helper's report. " * 20, {"role": "assistant", "subagent": "agent-7"}),
        (M, "Please go on with the gzip part, and keep memory flat. " * 5, {"role": "user"}),
    ]
    digest, tail = session(entries)
    text = render_brief(digest, context(), 4000, tail).text
    account = text.split("## The agent's latest account", 1)[1].split("\n## ", 1)[0]
    assert account.startswith(f" (#{len(WORK) + 1})")
    assert "helper's report" not in account and "Please go on" not in account


def test_a_latest_account_longer_than_its_excerpt_marks_the_middle_it_leaves_out() -> None:
    long = "First finding: the importer streams.\n" + "\n".join(f"Detail {i} of the middle." for i in range(400))
    digest, tail = session([*WORK, (M, long + "\nLast line: all 10 tests pass.", {"role": "assistant"})])
    text = render_brief(digest, context(), 8000, tail).text
    account = text.split("## The agent's latest account", 1)[1].split("\n## ", 1)[0]
    assert "> First finding: the importer streams." in account
    assert "> …" in account and "> Last line: all 10 tests pass." in account
    assert estimate_tokens(text) <= 8000
