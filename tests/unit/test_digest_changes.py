"""What the digest keeps about changes: which file, what changed in it, whether it happened at all."""

from __future__ import annotations

import json
from typing import Any

from handoff.domain.changes import change_gist, change_lines
from handoff.domain.digest import Digest
from handoff.domain.failures import failure_line
from handoff.domain.models import ContextType
from handoff.domain.selection import terms
from handoff.domain.tooluse import ToolUse, command_label, output_gist, read_tool_call, unwrap_shell

M, T = ContextType.MESSAGE, ContextType.TOOL_CALL


def fold(entries: list[tuple[ContextType, str, dict[str, Any]]]) -> Digest:
    digest = Digest()
    for seq, (kind, content, metadata) in enumerate(entries, start=1):
        digest.absorb(seq=seq, context_type=kind, content=content, metadata=metadata, agent="agent")
        digest = Digest.from_json(digest.to_json())
    return digest


PATCH = """*** Begin Patch
*** Update File: app/chat.ts
@@
 export const fetchChatResponse = async (url: string) => {
-  const response = await fetch(url)
+  const headers = { Accept: "text/event-stream" }
+  const response = await fetch(url, { headers })
*** Add File: app/sse.ts
+export function parseEvents(chunk: string) {
+  return chunk.split("\\n\\n")
+}
*** End Patch"""


def test_a_patch_run_through_the_shell_names_each_file_and_what_it_added() -> None:
    call = {"tool": "shell", "tool_use_id": "c1", "phase": "call", "input": {"command": ["bash", "-lc", PATCH]}}
    digest = fold([(T, "$ apply_patch", call), (T, "Success. Updated the following files", {"tool_use_id": "c1"})])
    assert digest.files["app/chat.ts"]["a"] == "edited"
    assert "fetchChatResponse" in digest.files["app/chat.ts"]["g"]
    assert "text/event-stream" in digest.files["app/chat.ts"]["g"]
    assert digest.files["app/sse.ts"]["a"] == "created"
    assert "parseEvents" in digest.files["app/sse.ts"]["g"]


def test_a_heredoc_write_is_summarised_by_what_it_wrote_not_by_the_cat_line() -> None:
    script = (
        "cat > fix.py << 'EOF'\nimport numpy as np\ndef clamp_ghi(ghi):\n    return np.where(ghi == 0, 0, ghi)\nEOF"
    )
    digest = fold([(T, "$ cat > fix.py", {"tool": "bash", "phase": "call", "input": {"command": script}})])
    gist = digest.files["fix.py"]["g"]
    assert "clamp_ghi" in gist and "cat >" not in gist


def test_a_redirect_beyond_the_shown_command_length_still_records_the_file() -> None:
    long = "brew search font && mkdir -p cfg && printf '%s\\n' " + " ".join(f"'line {i}'" for i in range(60))
    digest = fold([(T, "$ ...", {"tool": "bash", "phase": "call", "input": {"command": long + " > cfg/ghostty.conf"}})])
    assert digest.files["cfg/ghostty.conf"]["a"] == "written"


def test_an_edit_that_failed_is_marked_not_applied_and_counted_once() -> None:
    call = {
        "tool": "Edit",
        "tool_use_id": "e1",
        "phase": "call",
        "input": {"file_path": "src/a.py", "old_string": "x = 1", "new_string": "x = 2"},
    }
    answer = {"tool_use_id": "e1", "is_error": True}
    digest = fold(
        [(T, "Edit", call), (T, "<tool_use_error>String to replace not found in file.</tool_use_error>", answer)]
    )
    info = digest.files["src/a.py"]
    assert info["a"] == "edit not applied" and info["n"] == 1
    assert digest.errors[-1]["text"] == "String to replace not found in file."
    assert "src/a.py" in digest.errors[-1]["cmd"]


def test_swe_agent_edit_commands_record_the_file_and_the_new_text() -> None:
    meta = {"tool": "swe-agent", "command": "edit 287:295", "phase": "call", "path": "/repo/pkg/handler.py"}
    body = "$ edit 287:295\n    if 'PixelData' in ds:\n        required.append('PixelRepresentation')\nend_of_edit"
    digest = fold(
        [
            (T, body, meta),
            (T, "Your proposed edit has introduced new syntax error(s).", {"tool": "swe-agent", "is_error": True}),
        ]
    )
    info = digest.files["/repo/pkg/handler.py"]
    assert info["a"] == "edit not applied"
    assert "PixelData" in info["g"]


def test_the_same_failure_again_is_one_error_with_a_count() -> None:
    fail = "FileNotFoundError: [Errno 2] No such file or directory: 'x.csv'"
    entries = [
        (
            T,
            f'Traceback (most recent call last):\n  File "a.py", line 1\n{fail}',
            {"tool": "bash", "command": "python a.py", "exit_code": 1},
        )
    ] * 3
    digest = fold(entries)
    assert len(digest.errors) == 1
    assert digest.errors[0]["n"] == 3 and digest.errors[0]["first"] == 1


def test_git_prints_the_commit_it_made_and_that_is_kept_with_its_sha() -> None:
    call = {
        "tool": "Bash",
        "tool_use_id": "g",
        "phase": "call",
        "input": {"command": "git commit -m \"$(cat <<'EOF'\nAdd the spec"},
    }
    digest = fold(
        [
            (T, "$ git commit", call),
            (T, "[master (root-commit) 5a0a0b0] Add the spec\n 1 file changed", {"tool_use_id": "g"}),
        ]
    )
    texts = [s.text for s in digest.top]
    assert "Committed 5a0a0b0: Add the spec" in texts


def test_parallel_task_creations_get_their_ids_by_subject_not_by_order() -> None:
    creates = [
        (
            T,
            "TaskCreate",
            {
                "tool": "TaskCreate",
                "tool_use_id": f"t{i}",
                "phase": "call",
                "input": {"subject": subject, "description": "d"},
            },
        )
        for i, subject in enumerate(["Explore", "Design", "Ship"])
    ]
    answers = [
        (T, f"Task #{n} created successfully: {subject}", {"tool": "TaskCreate", "tool_use_id": f"t{i}"})
        for i, n, subject in [(2, "3", "Ship"), (0, "1", "Explore"), (1, "2", "Design")]
    ]
    update = (
        T,
        "TaskUpdate",
        {"tool": "TaskUpdate", "phase": "call", "input": {"taskId": "3", "status": "in_progress"}},
    )
    digest = fold([*creates, *answers, update])
    status = {p["text"]: p["status"] for p in digest.plan}
    assert status == {"Explore": "pending", "Design": "pending", "Ship": "in_progress"}


def test_work_handed_to_a_subagent_is_open_until_its_report_arrives() -> None:
    ask = {
        "subagent_type": "general-purpose",
        "description": "Build the hook",
        "prompt": "Write useTodos with localStorage",
    }
    digest = fold([(T, "Task", {"tool": "Task", "tool_use_id": "s1", "phase": "call", "input": ask})])
    assert digest.delegated[0]["what"] == "Build the hook" and not digest.delegated[0]["done"]
    report = (
        "## Summary\n\nI created useTodos in src/hooks/useTodos.ts; the root cause of the flicker was a missing key."
    )
    digest.absorb(seq=2, context_type=T, content=report, metadata={"tool": "Task", "tool_use_id": "s1"}, agent="agent")
    assert digest.delegated[0]["done"] == 2
    assert "useTodos" in digest.delegated[0]["said"]
    assert any("root cause" in s.text for s in digest.top)  # the report's findings count as prose


def test_older_digests_without_delegations_still_load() -> None:
    raw = json.loads(Digest().to_json())
    raw.pop("delegated")
    assert Digest.from_json(json.dumps(raw)).delegated == []


def test_an_example_block_inside_an_explanation_is_not_a_command_that_ran() -> None:
    explained = "The wait loop will be:\n```bash\nadb wait-for-device\n```\nthen we verify root."
    digest = fold([(M, explained, {"role": "assistant"})])
    assert digest.commands == []
    acted = "THOUGHT: run the tests\n```bash\npytest -q tests/test_a.py\n```"
    digest = fold([(M, acted, {"role": "assistant"})])
    assert digest.commands[-1]["cmd"] == "pytest -q tests/test_a.py"


def test_change_gists_skip_imports_and_name_what_a_new_file_defines() -> None:
    assert (
        change_gist("x\nimport os\nimport sys\nclass Loader:\n    def load(self):\n        pass")
        == "defines Loader, load"
    )
    assert change_gist("@@\n-import a\n+import b\n+RETRIES = 5") == "RETRIES = 5"
    assert change_gist("x\n=======\nvalue = compute()\n>>>>>>> REPLACE") == "value = compute()"


def test_change_lines_show_an_edit_as_the_lines_it_adds() -> None:
    use = ToolUse(tool="Edit", input={"file_path": "a.py", "old_string": "a = 1\nb = 2", "new_string": "a = 1\nb = 3"})
    assert change_lines(use, 200) == "b = 3"


def test_a_failed_tool_is_described_by_the_line_that_names_the_failure() -> None:
    output = "2026-04-08 22:04:10.502 defaults[1:2] \nThe domain/default pair of (x, y) does not exist"
    assert failure_line(output) == "The domain/default pair of (x, y) does not exist"
    assert failure_line("<tool_use_error>File has not been read yet.</tool_use_error>") == "File has not been read yet."


def test_shell_wrappers_are_unwrapped_to_the_command_they_run() -> None:
    assert unwrap_shell('/bin/zsh -lc "pytest -q"') == "pytest -q"
    assert unwrap_shell("bash -lc 'make test'") == "make test"
    assert unwrap_shell("ls -la") == "ls -la"


def test_a_command_label_drops_the_directory_prefix_and_the_trailing_comment() -> None:
    assert command_label("cd /repo/src && go test ./...  # Run tests to verify") == "go test ./..."
    assert command_label("cd '/a b' ; pytest -q tests/test_x.py") == "pytest -q tests/test_x.py"
    assert command_label('/bin/zsh -lc "pytest -q"') == "pytest -q"
    # A `#` inside quotes is part of the command, not a comment.
    assert command_label("git commit -m 'fix # 12'") == "git commit -m 'fix # 12'"
    assert command_label("cd /repo") == "cd /repo"


def test_an_output_that_only_echoes_its_command_has_no_gist() -> None:
    assert output_gist("$ pnpm db:seed") == ""
    assert output_gist("$ pytest -q\n3 passed in 0.2s") == "3 passed in 0.2s"


def test_identifiers_weigh_more_than_words_and_environment_names_count_as_identifiers() -> None:
    found = terms("Set ALLOW_SEED and SITE_URL in convex/seedData.ts before getImageBlob() runs")
    for identifier in ("allow_seed", "site_url", "convex/seeddata.ts", "getimageblob"):
        assert found[identifier] == 1.0, identifier
    assert "runs" not in found  # short common words say nothing
    assert terms("同じ文章") == terms("同じ文章")  # remembered; the same text, the same terms


def test_a_tool_refusal_passed_on_as_plain_text_is_a_failure() -> None:
    for text in (
        "<tool_use_error>File has not been read yet. Read it first before writing to it.</tool_use_error>",
        "String to replace not found in file.\nString: def main():",
        "Error: ENOENT: no such file or directory, open 'src/app.ts'",
        "exec_command failed for `/bin/zsh -lc 'ps -p 1'`: CreateProcess { message: \"Sandbox denied\" }",
    ):
        assert read_tool_call(text, {}).failed is True, text
    # The same words later in an output are what a file or a log says, not how the call ended.
    for text in ("src/app.py:3: raise Error: no", "all good\nError: only in the log", "Errors: 0, warnings: 2"):
        assert read_tool_call(text, {}).failed is not True, text
    digest = fold([(ContextType.TOOL_CALL, "String to replace not found in file.\nString: def main():", {})])
    assert any("String to replace not found" in e["text"] for e in digest.errors)


def test_a_file_entry_without_metadata_is_named_by_its_first_line() -> None:
    F = ContextType.FILE
    digest = fold(
        [
            (F, "created tools/run_dev.py\n#!/usr/bin/env python3\nimport subprocess", {}),
            (F, "Edited: `src/app.ts`\n-const a = 1\n+const a = 2", {}),
            (F, "README.md\n# Title", {}),
            (F, "This change makes the importer stream its rows.", {}),
        ]
    )
    assert digest.files["tools/run_dev.py"]["a"] == "created"
    assert digest.files["src/app.ts"]["a"] == "edited"
    assert "README.md" in digest.files
    assert "(unnamed file)" in digest.files  # prose names no file
