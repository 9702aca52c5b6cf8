"""aider's chat history: user lines after an interrupted reply or a restart, and whole-file edits."""

from __future__ import annotations

from pathlib import Path

from handoff.capture.aider import read_aider
from handoff.capture.records import ReadReport


def _log(tmp_path: Path, *lines: str) -> list:
    """aider ends its own `#### ` and `> ` lines with "  " (a markdown hard break)."""
    text = "\n".join(line + "  " if line.startswith(("#### ", ">")) else line for line in lines) + "\n"
    path = tmp_path / ".aider.chat.history.md"
    path.write_text(text)
    return list(read_aider(path, ReadReport()))


def _users(entries: list) -> list[str]:
    return [e.content for e in entries if e.metadata.get("role") == "user"]


def test_a_request_after_a_reply_cut_off_inside_a_code_block_is_the_users(tmp_path: Path) -> None:
    # Excerpt (shortened) of 0xf1e/health-analyzer-poc .aider.chat.history.md, lines 298-330,
    # commit 87686c139eecd296ea3ab9c72b4e0c9197f68668: ^C while the model wrote a SEARCH block.
    entries = _log(
        tmp_path,
        "#### Let's use python instead of bash",
        ">",
        ">",
        "> ^C again to exit",
        "",
        "I'll help you convert the shell script to a Python script.",
        "",
        "metrics_check.py",
        "```python",
        "<<<<<<< SE",
        "",
        "",
        "#### Actually, enver mind. Let's continue using bash. However, I want you to make the bash output more verbose.",
        "",
        "I'll modify the bash script to make it more verbose.",
        "",
        "metrics_check.sh",
        "```bash",
        "<<<<<<< SEARCH",
        'echo "Checking"',
        "=======",
        'echo "Checking metrics for $OWNER/$REPO_NAME"',
        ">>>>>>> REPLACE",
        "```",
        "",
        "> Applied edit to metrics_check.sh",
        "",
        "#### Sorry, the requirements just changed al ittle. I now want this:",
        "####   ",
        "#### 1. A list of all .md files in the root folder of the repository",
        "",
        "# aider chat started at 2025-09-22 14:55:00",
        "",
        "> Aider v0.83.1",
        "> Run shell command? (Y)es/(N)o/(D)on't ask again [Yes]: n",
        "",
        "#### Turns out we need to rewrite this project in python",
    )
    users = _users(entries)
    assert users[0] == "Let's use python instead of bash"
    assert users[1].startswith("Actually, enver mind.")
    assert users[2].startswith("Sorry, the requirements") and "all .md files" in users[2]
    assert users[3] == "Turns out we need to rewrite this project in python"
    assistant = [e.content for e in entries if e.metadata.get("role") == "assistant"]
    assert not any("####" in text or "Applied edit" in text for text in assistant)
    edits = [e for e in entries if e.context_type == "file" and e.content]
    assert [e.metadata["path"] for e in edits] == ["metrics_check.sh"]  # the cut-off block is not an edit
    assert '+echo "Checking metrics for $OWNER/$REPO_NAME"' in edits[0].content.splitlines()


def test_after_ctrl_c_keyboard_interrupt_and_a_restart_users_are_users(tmp_path: Path) -> None:
    entries = _log(
        tmp_path,
        "# aider chat started at 2024-08-04 23:01:00",
        "",
        "#### /add content.js",
        "> Added content.js to the chat",
        ">",
        ">",
        "> ^C again to exit",
        ">",
        ">",
        "> ^C KeyboardInterrupt",
        "",
        "# aider chat started at 2024-08-04 23:10:26",
        "",
        "> Aider v0.47.1",
        "",
        "#### make the scroll catcher ignore iframes",
    )
    assert _users(entries) == ["make the scroll catcher ignore iframes"]
    assert sum(e.metadata.get("kind") == "session_start" for e in entries) == 2


def test_whole_file_edits_carry_their_content(tmp_path: Path) -> None:
    entries = _log(
        tmp_path,
        "#### write a greeting module",
        "",
        "Here is the new file:",
        "",
        "src/greet.py",
        "```python",
        "def greet(name):",
        '    return f"hello {name}"',
        "",
        "def farewell(name):",
        '    return f"bye {name}"',
        "```",
        "",
        "To try it:",
        "```bash",
        "python -c 'import greet'",
        "```",
        "",
        "> Applied edit to src/greet.py",
    )
    files = [e for e in entries if e.context_type == "file"]
    whole = [e for e in files if e.content]
    assert len(whole) == 1 and whole[0].metadata["path"] == "src/greet.py"
    assert whole[0].metadata.get("whole_file") and "def farewell(name):" in whole[0].content
    assert any(e.metadata.get("path") == "src/greet.py" and not e.content for e in files)  # "Applied edit"
    assert _users(entries) == ["write a greeting module"]


def test_a_markdown_heading_of_the_model_is_not_a_user_line(tmp_path: Path) -> None:
    path = tmp_path / ".aider.chat.history.md"
    path.write_text("> Aider v0.86.1  \n\n#### fix it  \n\n#### Step 1\nDo this.\n")  # no "  " end: the model's
    entries = list(read_aider(path, ReadReport()))
    assert _users(entries) == ["fix it"]
    assert any(e.metadata.get("role") == "assistant" and e.content.startswith("#### Step 1") for e in entries)
