"""aider's `.aider.chat.history.md`.

Markdown, appended to as the user works: `# aider chat started at …` opens a session (a file holds
many), `#### ` lines are the user's words (several in a row are one message), `> ` lines are
aider's own output (settings, "Applied edit to …", commit lines, command echoes), and everything
else is the model's answer, with edits as SEARCH/REPLACE blocks or whole-file listings under the path. aider does
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
_FENCE = re.compile(r"^\s*(```+|~~~+)")
_SEARCH = "<<<<<<< SEARCH"
_PATH = re.compile(r"^[\w./\\@+-]+$")
_RUN_COMMANDS = ("/run", "/test", "/lint", "!")


def read_aider(path: Path, report: ReadReport) -> Iterator[Captured]:
    report.agent_name = "aider"
    kind = ""  # "user" | "tool" | "assistant"
    lines: list[str] = []
    start = 0
    session = 0
    fence = ""  # the opening fence of the code block of the model's answer we are in ("" outside)
    previous = ""
    breaks = False  # this log keeps aider's "  " line ends (an editor may have stripped them)
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if match := _SESSION.match(line):
                yield from _flush(kind, lines, start, report)
                kind, lines, fence, previous = "", [], "", line
                session += 1
                if report.session_id is None:
                    report.session_id = "aider-" + re.sub(r"\W+", "-", match.group(1)).strip("-")
                yield Captured(
                    f"l{line_no}", "system", f"aider session started at {match.group(1)}", {"kind": "session_start"}
                )
                continue
            breaks = breaks or (line.startswith(("#### ", "> ")) and line.endswith("  "))
            this = _aider_line(line, previous, kind, breaks, bool(fence))
            if this == "user":
                text = line[5:]
            elif this == "tool":
                text = line[1:].lstrip() if line.startswith("> ") or line == ">" else line
                text = text if line.startswith(">") else line  # a later line of a multi-line tool output
            else:
                this, text = "assistant", line
                if fence:
                    if _closes(line, fence):
                        fence = ""
                elif match := _FENCE.match(line):
                    fence = match.group(1)
            if this != "assistant":
                fence = ""  # a reply cut off inside a code block: aider's own lines end it
            if this != kind:
                yield from _flush(kind, lines, start, report)
                kind, lines, start = this, [], line_no
            lines.append(text.rstrip())
            previous = line
    yield from _flush(kind, lines, start, report)


def _aider_line(line: str, previous: str, kind: str, breaks: bool, in_fence: bool) -> str:
    """ "user", "tool" or "" (the model's answer) for a line, by how aider writes its own lines.

    aider writes each user line as `#### text  ` and each of its own as `> text  ` (a markdown hard
    break), after a blank line; the model's answer also comes after a blank line. So a `#### ` line is
    the user's wherever it appears (after `^C`, after a restart, right after a reply cut off inside a
    code block) while a `#### Heading` the model wrote, which lacks the "  " end, is not; inside a code
    block only a line with aider's marks that opens a new paragraph ends the block.
    """
    user = line.startswith("#### ") or line.rstrip() == "####"
    tool = line.startswith(">")
    if user or tool:
        marked = line.endswith("  ") or not breaks
        if in_fence and not (marked and (not previous.strip() or previous.startswith(("#### ", ">")))):
            return ""
        if user and not marked and not in_fence:
            return ""  # the model's own `#### ` heading
        return "user" if user else "tool"
    if kind == "tool" and line.strip() and previous.strip() and not in_fence:
        return "tool"  # a multi-line tool output: aider marks only its first line
    return ""


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(fence) and not stripped.strip("`~")


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
    """The model's edits: SEARCH/REPLACE blocks and whole-file listings, each under the file's path.

    `diff` puts the path on the line before the opening fence, `diff-fenced` on the line after it;
    `whole` gives the path, then the file's full new text in a fenced block. A block cut off by an
    interruption (no closing fence) was never applied and is left out.
    """
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        opening = match.group(1)
        close = next((i for i in range(index + 1, len(lines)) if _closes(lines[i], opening)), None)
        if close is None:
            return
        body = lines[index + 1 : close]
        path = _path(lines[index - 1]) if index else None
        if body and _path(body[0]) and len(body) > 1 and body[1].strip() == _SEARCH:
            path, body = _path(body[0]), body[1:]  # diff-fenced
        first = close - len(body)  # where body starts in lines
        searches = [first + i for i, b in enumerate(body) if b.strip() == _SEARCH]
        if path and searches:
            for at, end in zip(searches, [*searches[1:], close], strict=True):
                yield from _search_replace(f"{rid}-edit{at}", path, lines[at:end])
        elif any(b.strip() == "=======" or b.startswith(">>>>>>> REPLACE") for b in body):
            pass  # a malformed SEARCH/REPLACE block, which aider refuses
        elif path and body:
            yield Captured(
                f"{rid}-edit{index}",
                "file",
                clean_text("\n".join([f"{path} (whole file)", *body[:400]])),
                {"path": path, "action": "written", "tool": "aider", "proposed": True, "whole_file": True},
            )
        index = close + 1


def _path(line: str) -> str | None:
    path = line.strip().strip("`*").strip()
    path = path[:-1] if path.endswith(":") else path
    if not path or len(path) > 300 or not _PATH.match(path):
        return None
    if path.endswith("/"):
        return None  # a directory tree, not a file listing
    return path if ("." in path or "/" in path or path.lower().endswith("file")) else None


def _search_replace(rid: str, path: str, body: list[str]) -> Iterator[Captured]:
    """The blocks as a diff: `-` for the lines searched for, `+` for their replacement."""
    out = [f"{path} (search/replace)"]
    part = ""
    created = True
    for line in body[:400]:
        marker = line.strip()
        if marker == _SEARCH:
            part = "-"
        elif marker == "=======" and part == "-":
            part = "+"
        elif marker.startswith(">>>>>>> REPLACE"):
            part = ""
        elif part:
            out.append(part + line)
            created = created and not (part == "-" and line.strip())
    yield Captured(
        rid,
        "file",
        clean_text("\n".join(out)),
        {"path": path, "action": "created" if created else "edited", "tool": "aider", "proposed": True},
    )
