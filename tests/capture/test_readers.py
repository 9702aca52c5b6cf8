"""Reading real agent logs (bench/handoff_quality/cases, each with its provenance) and their traps."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from handoff.capture.detect import LogFormatError, check_readable_file, detect_format, read_log
from handoff.capture.records import Position, ReadReport

CASES = Path(__file__).resolve().parents[2] / "bench" / "handoff_quality" / "cases"
EXPECTED_FORMAT = {
    "cc": "claude-code",
    "codex": "codex",
    "aider": "aider",
    "msa": "mini-swe-agent",
    "msa2": "mini-swe-agent",  # mini-swe-agent 2.x trajectories
    "swea": "swe-agent",
}


def source(case: str) -> Path:
    return next((CASES / case).glob("source.*"))


def read(path: Path, fmt: str | None = None) -> tuple[list, ReadReport]:
    report = ReadReport()
    return list(read_log(path, fmt or detect_format(path), report)), report


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_every_real_log_is_detected_and_read_without_problems(case: str) -> None:
    path = source(case)
    assert detect_format(path) == EXPECTED_FORMAT[case.split("-")[0]]
    entries, report = read(path)
    assert len(entries) > 10 and report.problems == []
    ids = Counter(e.record_id for e in entries)
    assert max(ids.values()) == 1, ids.most_common(3)  # record ids are idempotency keys
    assert {e.context_type for e in entries} <= {"message", "tool_call", "file", "system"}
    assert any(e.metadata.get("role") == "user" for e in entries)


def test_claude_code_tools_plans_files_and_subagents() -> None:
    entries, report = read(source("cc-go-ci-nested-agents"))
    assert report.session_id == "967e501d-aa48-4eab-a21f-b17058bd78f0"
    subagents = {e.metadata.get("subagent") for e in entries} - {None}
    assert any(s.startswith("agent-") for s in subagents)  # subagents/agent-*.jsonl merged in
    bash = [e for e in entries if e.metadata.get("tool") == "Bash" and e.metadata.get("phase") == "call"]
    assert bash and all(e.content.startswith("$ ") for e in bash)
    results = [e for e in entries if e.metadata.get("phase") == "result"]
    assert all(e.metadata.get("tool_use_id") for e in results)
    assert not any("signature" in e.content for e in entries)  # thinking blocks are not content
    entries, _ = read(source("cc-ai-music-embeddings"))
    todos = [e for e in entries if e.metadata.get("tool") == "TodoWrite"]
    assert todos and "todos" in todos[0].metadata["input"]
    files = [e for e in entries if e.context_type == "file"]
    assert files and all(not e.metadata["path"].startswith("/Users/") for e in files)  # relative to cwd
    assert any(e.content.splitlines()[1].startswith("--- before") for e in files if e.metadata["tool"] == "Edit")
    entries, _ = read(source("cc-hyprland-teams-plan"))
    plans = [e for e in entries if e.metadata.get("tool") == "ExitPlanMode"]
    assert plans and "plan" in plans[0].metadata["input"]
    assert any(e.metadata.get("rejected_by_user") for e in entries)


def test_codex_wrapped_and_legacy_rollouts() -> None:
    entries, report = read(source("codex-wrapped-lmstudio"))
    assert report.session_id == "019a93b9-f380-7600-98ff-940e6b99603c"
    assert any(e.metadata.get("kind") == "injected_context" for e in entries)  # <environment_context>
    calls = [e for e in entries if e.metadata.get("phase") == "call"]
    assert any(e.content.startswith("$ ") for e in calls)
    outputs = [e for e in entries if e.metadata.get("phase") == "result"]
    assert any(isinstance(e.metadata.get("exit_code"), int) for e in outputs)
    assert not any("encrypted_content" in e.content for e in entries)
    entries, report = read(source("codex-legacy-convex-seed"))
    assert report.session_id == "704d5394-f95a-4db9-b022-14a2668e7765"
    assert any(e.metadata.get("tool") == "update_plan" for e in entries)
    assert any("*** Begin Patch" in e.content for e in entries)


def test_aider_history_users_edits_and_commits() -> None:
    entries, _ = read(source("aider-nestjs-apikey-guard"))
    assert any(e.metadata.get("role") == "user" and "guard" in e.content for e in entries)
    assert any(e.context_type == "file" and e.metadata["path"].startswith("src/") for e in entries)


def test_trajectories_observations_carry_their_exit_code() -> None:
    entries, report = read(source("msa-sympy-mod-integer"))
    assert report.session_id == "sympy__sympy-15599"
    outputs = [e for e in entries if e.context_type == "tool_call"]
    assert outputs and all(isinstance(e.metadata.get("exit_code"), int) for e in outputs)
    entries, _ = read(source("swea-pydicom-floatpixel"))
    assert not any("DEMONSTRATION" in e.content for e in entries)  # the demo turn is left out
    assert any(e.metadata.get("is_error") for e in entries)  # the rejected edits


def test_corrupt_and_truncated_lines_are_reported_by_number_and_reading_goes_on(tmp_path: Path) -> None:
    lines = source("codex-wrapped-ghostty-font").read_text().splitlines(keepends=True)
    broken = tmp_path / "rollout.jsonl"
    broken.write_text("".join(lines[:10]) + "{not json\n" + '"a string"\n' + "".join(lines[10:40]) + '{"half": ')
    entries, report = read(broken, "codex")
    assert [p.line for p in report.problems] == [11, 12]
    assert entries and report.positions[str(broken)].line == 42  # the unfinished last line waits


def test_a_grown_log_resumes_where_the_last_read_stopped(tmp_path: Path) -> None:
    lines = source("cc-ai-music-embeddings").read_text().splitlines(keepends=True)
    log = tmp_path / "session.jsonl"
    log.write_text("".join(lines[:50]))
    first, report = read(log, "claude-code")
    stop = report.positions[str(log)]
    with log.open("a") as handle:
        handle.write("".join(lines[50:]))
    rest_report = ReadReport()
    rest = list(read_log(log, "claude-code", rest_report, {str(log): stop}))
    whole, _ = read(log, "claude-code")
    assert [e.record_id for e in first] + [e.record_id for e in rest] == [e.record_id for e in whole]


@pytest.mark.parametrize("kind", ["missing", "directory", "fifo", "binary", "text", "wrong-json"])
def test_files_that_are_not_logs_get_one_clear_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "binary":
        shutil.copy("/bin/sh", path)
    elif kind == "text":
        path.write_text("just some notes\n")
    elif kind == "wrong-json":
        path.write_text(json.dumps({"hello": "world"}) + "\n")
    with pytest.raises(LogFormatError) as caught:
        check_readable_file(path)
        detect_format(path)
    assert str(path) in caught.value.message and "\n" not in caught.value.message


def test_positions_start_where_told() -> None:
    path = source("codex-wrapped-lmstudio")
    report = ReadReport()
    assert list(read_log(path, "codex", report, {str(path): Position(path.stat().st_size, 10_000)})) == []
