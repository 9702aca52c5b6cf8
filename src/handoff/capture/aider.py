"""aider's `.aider.chat.history.md`.

Markdown, appended to as the user works: `# aider chat started at …` opens a session (a file holds
many), `#### ` lines are the user's words (several in a row are one message), `> ` lines are
aider's own output (settings, "Applied edit to …", commit lines, command echoes), and everything
else is the model's answer, with edits as SEARCH/REPLACE blocks under the file's path. aider does
not keep what `/run` or `/test` printed, only that it ran. A record's id is its line number.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from handoff.capture.records import Captured, ReadReport, clean_text

_SESSION = re.compile(r"^# aider chat started at (.+?)\s*$")
_APPLIED = re.compile(r"^Applied edit to (.+?)\s*$")
_COMMIT = re.compile(r"^Commit ([0-9a-f]{6,40}) (.+)$")
_UNDO = re.compile(r"^Removed: ([0-9a-f]{6,40}) (.+)$")
_FENCE = re.compile(r"^\s*```")
_SEARCH = "<<<<<<< SEARCH"
_RUN_COMMANDS = ("/run", "/test", "/lint", "!")


def read_aider(path: Path, report: ReadReport) -> Iterator[Captured]:
    report.agent_name = "aider"
    kind = ""  # "user" | "tool" | "assistant"
    lines: list[str] = []
    start = 0
    session = 0
    in_fence = False  # inside a code block of the model's answer, "> " and "#### " are code
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = raw.rstrip("\n")
            if match := _SESSION.match(line):
                yield from _flush(kind, lines, start, report)
                kind, lines = "", []
                session += 1
                if report.session_id is None:
                    report.session_id = "aider-" + re.sub(r"\W+", "-", match.group(1)).strip("-")
                yield Captured(
                    f"l{line_no}", "system", f"aider session started at {match.group(1)}", {"kind": "session_start"}
                )
                continue
            if in_fence:
                this, text = "assistant", line
                if _FENCE.match(line):
                    in_fence = False
            elif line.startswith("#### "):
                this = "user"
                text = line[5:]
            elif line.startswith(">"):
                this = "tool"
                text = line[1:].lstrip() if line.startswith("> ") or line == ">" else line[1:]
            else:
                this = "assistant"
                text = line
                in_fence = bool(_FENCE.match(line))
            if this != kind:
                yield from _flush(kind, lines, start, report)
                kind, lines, start = this, [], line_no
            lines.append(text.rstrip())
    yield from _flush(kind, lines, start, report)


def _flush(kind: str, lines: list[str], start: int, report: ReadReport) -> Iterator[Captured]:
    text = "\n".join(lines).strip()
    if not kind or not text:
        return
    report.records += 1
    rid = f"l{start}"
    if kind == "user":
        yield from _user(rid, text)
    elif kind == "tool":
        yield from _tool(rid, lines)
    else:
        yield Captured(rid, "message", clean_text(text), {"role": "assistant"})
        yield from _edits(rid, lines)


def _user(rid: str, text: str) -> Iterator[Captured]:
    if text.startswith("/") or text.startswith("!"):
        command, _, rest = text.partition(" ")
        if command in _RUN_COMMANDS or text.startswith("!"):
            shell = rest if command != "!" and not text.startswith("!") else text.lstrip("!").strip()
            yield Captured(
                rid,
                "tool_call",
                clean_text(f"$ {shell or command}"),
                {"tool": command.lstrip("/") or "run", "phase": "call", "command": shell[:300]},
            )
        elif command in ("/ask", "/code", "/architect") and rest.strip():
            yield Captured(rid, "message", clean_text(rest.strip()), {"role": "user", "mode": command[1:]})
        else:
            yield Captured(rid, "system", clean_text(text[:2000]), {"kind": "aider_command", "command": command})
        return
    yield Captured(rid, "message", clean_text(text), {"role": "user"})


def _tool(rid: str, lines: list[str]) -> Iterator[Captured]:
    other: list[str] = []
    for index, line in enumerate(lines):
        if match := _APPLIED.match(line):
            yield Captured(f"{rid}-{index}", "file", "", {"path": match.group(1), "action": "edited", "tool": "aider"})
        elif match := _UNDO.match(line):
            yield Captured(
                f"{rid}-{index}",
                "system",
                f"undid commit {match.group(1)}: {match.group(2)}",
                {"kind": "undo", "commit": match.group(1)},
            )
        elif match := _COMMIT.match(line):
            yield Captured(
                f"{rid}-{index}",
                "system",
                f"commit {match.group(1)}: {match.group(2)}",
                {"kind": "commit", "commit": match.group(1)},
            )
        else:
            other.append(line)
    text = "\n".join(other).strip()
    if text:
        yield Captured(rid, "tool_call", clean_text(text), {"tool": "aider", "phase": "result"})


def _edits(rid: str, lines: list[str]) -> Iterator[Captured]:
    """SEARCH/REPLACE blocks: the path sits on the line before the opening fence."""
    for index, line in enumerate(lines):
        if line.strip() != _SEARCH or index < 2:
            continue
        fence = index - 1
        if not _FENCE.match(lines[fence]):
            continue
        path = lines[fence - 1].strip().strip("`*")
        if not path or " " in path or len(path) > 300:
            continue
        body = lines[index + 1 : index + 400]
        divider = next((i for i, b in enumerate(body) if b.strip() == "======="), None)
        searched = body[:divider] if divider is not None else []
        action = "created" if divider is not None and not any(s.strip() for s in searched) else "edited"
        yield Captured(
            f"{rid}-edit{index}",
            "file",
            clean_text("\n".join(body[:200])),
            {"path": path, "action": action, "tool": "aider", "proposed": True},
        )
