"""`handoff import`, `handoff hook claude-code` and `handoff watch`, run the way users run them."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from handoff.container import Container
from tests.conftest import settings_for
from tests.e2e.servers import HANDOFF, ServerDatabase, http_server, server_env

CASES = Path(__file__).resolve().parents[2] / "bench" / "handoff_quality" / "cases"


def run(db: ServerDatabase, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HANDOFF, *args], input=stdin, capture_output=True, text=True, env=server_env(db), timeout=120, check=False
    )


def imported(db: ServerDatabase, path: Path, *extra: str) -> dict[str, Any]:
    done = run(db, "import", str(path), "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def session_state(db: ServerDatabase, key: str) -> tuple[int, list[str | None]]:
    async with Container.build(settings_for(db)) as container:
        view = await container.sessions.get(key)
        page = await container.context.page(key, cursor=None, limit=500, context_types=None)
        keys = [e.idempotency_key for e in page.entries]
        return view.session.entry_count, keys


@pytest.mark.parametrize(
    "case",
    [
        "cc-hyprland-teams-plan",
        "codex-wrapped-lmstudio",
        "codex-legacy-convex-seed",
        "aider-iot-pytorch",
        "msa-django-field-deepcopy",
    ],
)
def test_import_is_idempotent_and_prints_one_json_object(server_db: ServerDatabase, case: str) -> None:
    path = next((CASES / case).glob("source.*"))
    first = imported(server_db, path)
    assert set(first) >= {"session_key", "format", "imported", "skipped", "redacted"}
    assert first["imported"] > 10 and first["problems"] == []
    again = imported(server_db, path)
    assert again["session_key"] == first["session_key"] and again["imported"] == 0
    count, keys = anyio.run(session_state, server_db, first["session_key"])
    assert count == first["imported"] and len(set(keys)) == len(keys)


def test_a_log_that_grew_imports_only_its_new_records(server_db: ServerDatabase, tmp_path: Path) -> None:
    lines = (CASES / "cc-ai-music-embeddings" / "source.jsonl").read_text().splitlines(keepends=True)
    log = tmp_path / "b0f7.jsonl"
    log.write_text("".join(lines[:60]) + "{this line is corrupt\n" + "".join(lines[60:80]))
    first = imported(server_db, log, "--session-key", "music")
    assert [p["line"] for p in first["problems"]] == [61]
    with log.open("a") as handle:
        handle.write("".join(lines[80:]))
    second = imported(server_db, log, "--session-key", "music")
    assert second["imported"] > 0 and second["problems"] == []
    whole = tmp_path / "whole.jsonl"
    whole.write_text("".join(lines))
    reference = imported(server_db, whole, "--session-key", "music-whole")
    assert first["imported"] + second["imported"] == reference["imported"]


@pytest.mark.parametrize("kind", ["directory", "missing", "binary", "text"])
def test_bad_paths_get_one_line_and_exit_2(server_db: ServerDatabase, tmp_path: Path, kind: str) -> None:
    path = {
        "directory": tmp_path,
        "missing": tmp_path / "nope.jsonl",
        "binary": tmp_path / "bin",
        "text": tmp_path / "t.md",
    }[kind]
    if kind == "binary":
        shutil.copy("/bin/sh", path)
    if kind == "text":
        path.write_text("# notes\nnothing here\n")
    done = run(server_db, "import", str(path), "--json")
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and str(path) in done.stderr


def test_wrong_format_flag_names_what_was_detected(server_db: ServerDatabase) -> None:
    done = run(server_db, "import", str(CASES / "codex-wrapped-lmstudio" / "source.jsonl"), "--format", "aider")
    assert done.returncode == 2 and "codex" in done.stderr


def test_import_redacts_secrets_before_storing(server_db: ServerDatabase, tmp_path: Path) -> None:
    log = tmp_path / "leak.jsonl"
    record = {
        "type": "user",
        "sessionId": "leak-1",
        "uuid": "u1",
        "timestamp": "2026-01-01T00:00:00Z",
        "message": {"role": "user", "content": "deploy with AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE please"},
    }
    log.write_text(json.dumps(record) + "\n")
    result = imported(server_db, log)
    assert result["redacted"] == 1
    dump = run(server_db, "sessions", "show", result["session_key"], "--json")
    assert "AKIAIOSFODNN7EXAMPLE" not in dump.stdout and "[REDACTED:aws_access_key]" in dump.stdout


def test_import_into_a_running_server_over_mcp(server_db: ServerDatabase) -> None:
    path = CASES / "msa-sympy-mod-integer" / "source.traj.json"
    with http_server(server_db) as server:
        first = run(server_db, "import", str(path), "--json", "--url", server.url)
        assert first.returncode == 0, first.stderr
        again = run(server_db, "import", str(path), "--json", "--url", server.url)
    one, two = json.loads(first.stdout), json.loads(again.stdout)
    assert one["imported"] == 38 and two["imported"] == 0 and two["skipped"] == 38


def test_claude_code_hook_captures_a_growing_transcript(server_db: ServerDatabase, tmp_path: Path) -> None:
    lines = (CASES / "cc-volcano-dra-quota" / "source.jsonl").read_text().splitlines(keepends=True)
    transcript = tmp_path / "7ef4b236.jsonl"
    key = "claude-code-7ef4b236"
    counts = []
    for event, upto in (("UserPromptSubmit", 40), ("PostToolUse", 120), ("Stop", len(lines))):
        transcript.write_text("".join(lines[:upto]))
        payload = {
            "session_id": "7ef4b236",
            "transcript_path": str(transcript),
            "hook_event_name": event,
            "cwd": str(tmp_path),
        }
        started = time.monotonic()
        done = run(server_db, "hook", "claude-code", stdin=json.dumps(payload))
        assert done.returncode == 0 and time.monotonic() - started < 10
        # The hook hands the import to a background worker and returns: wait for it, bounded.
        deadline = time.monotonic() + 60
        while True:
            try:
                count, keys = anyio.run(session_state, server_db, key)
            except Exception:
                count, keys = 0, []
            if count and (not counts or count > counts[-1]) and (event != "Stop" or count >= 141):
                break
            assert time.monotonic() < deadline, (event, count)
            time.sleep(0.2)
        assert len(set(keys)) == len(keys)
        counts.append(count)
    assert counts == sorted(counts) and counts[-1] == 141
    # A hook with nothing usable never fails the agent.
    assert run(server_db, "hook", "claude-code", stdin="not json").returncode == 0
    assert run(server_db, "hook", "claude-code", stdin="{}").returncode == 0


def test_watch_follows_a_growing_codex_rollout(server_db: ServerDatabase, tmp_path: Path) -> None:
    lines = (CASES / "codex-wrapped-ghostty-font" / "source.jsonl").read_text().splitlines(keepends=True)
    rollout = tmp_path / "rollout-2026-04-08T14-03-02-019d6d67.jsonl"
    rollout.write_text("".join(lines[:30]))
    watcher = subprocess.Popen(
        [HANDOFF, "watch", str(rollout), "--interval", "0.2", "--session-key", "fonts"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env(server_db),
    )
    try:

        def wait_for(predicate: Any) -> int:
            deadline = time.monotonic() + 60
            while True:
                try:
                    count, _ = anyio.run(session_state, server_db, "fonts")
                except Exception:
                    count = 0
                if predicate(count):
                    return count
                assert watcher.poll() is None, watcher.stderr.read() if watcher.stderr else ""
                assert time.monotonic() < deadline, count
                time.sleep(0.2)

        early = wait_for(lambda n: n > 0)
        with rollout.open("a") as handle:
            handle.write("".join(lines[30:]))
        assert wait_for(lambda n: n > early) > early
    finally:
        watcher.terminate()
        watcher.wait(timeout=15)
        for stream in (watcher.stdout, watcher.stderr):
            if stream is not None:
                stream.close()
