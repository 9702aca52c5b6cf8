"""What a log reader yields: entries ready for update_context, and the problems it met."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Anything bigger is cut (head and tail kept): a log line can hold a whole build log.
MAX_CAPTURED_CHARS = 1_000_000


@dataclass(frozen=True, slots=True)
class Captured:
    """One context entry read from a native log.

    `record_id` is the log's own id for the record (a uuid, a call id, a line number where the
    format has none) plus a part suffix; it becomes the entry's idempotency key, so importing the
    same log twice, or a log that has grown, never appends a record twice.
    """

    record_id: str
    context_type: str  # message | tool_call | file | system
    content: str
    metadata: dict[str, Any] = field(default_factory=dict)
    agent: str | None = None  # None: the session's owner (the importing agent)


@dataclass(slots=True)
class Problem:
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class Position:
    """Where reading a file stopped: the byte after the last complete line, and that line's number."""

    offset: int = 0
    line: int = 0


@dataclass(slots=True)
class ReadReport:
    """What a reader saw besides entries: the log's own session id, skipped records, problems."""

    format: str = ""
    session_id: str | None = None
    records: int = 0
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)
    agent_name: str | None = None
    # Per file read: where the next read resumes (JSON-lines formats only).
    positions: dict[str, Position] = field(default_factory=dict)

    def problem(self, line: int, reason: str) -> None:
        self.skipped += 1
        if len(self.problems) < 1000:
            self.problems.append(Problem(line, reason))


def clean_text(text: str) -> str:
    """Text as it can be stored: NUL and lone surrogates replaced, giant strings cut in the middle."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    if len(text) > MAX_CAPTURED_CHARS:
        half = MAX_CAPTURED_CHARS // 2
        text = f"{text[:half]}\n[… {len(text) - 2 * half} characters left out on import …]\n{text[-half:]}"
    return text


def text_of(content: Any) -> str:
    """The text of a message content: a string, or a list of {type: text, text} blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return "\n".join(parts)
    return str(content)


FINGERPRINT_BYTES = 4096


def fingerprint(path: Path) -> str:
    """A hash of the file's first bytes: a log replaced by another file starts over."""
    with path.open("rb") as handle:
        return hashlib.sha256(handle.read(FINGERPRINT_BYTES)).hexdigest()


def iter_jsonl(path: Path, start: Position, report: ReadReport) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each JSON object line from `start` on.

    A last line without its newline may still be being written: it is read when it parses, and
    otherwise left for the next read (the position stops before it) instead of being reported.
    Bad lines are reported with their numbers and skipped; reading goes on.
    """
    offset, line_no = start.offset, start.line
    with path.open("rb") as handle:
        handle.seek(offset)
        for raw in handle:
            complete = raw.endswith(b"\n")
            text = raw.decode("utf-8", "replace").strip()
            try:
                record = json.loads(text) if text else None
            except ValueError:
                if not complete:
                    break  # a line still being written: resume here next time
                line_no += 1
                offset += len(raw)
                report.records += 1
                report.problem(line_no, f"{path.name}:{line_no}: not valid JSON (corrupt or truncated line)")
                continue
            line_no += 1
            offset += len(raw)
            if record is None:
                continue
            if not isinstance(record, dict):
                report.records += 1
                report.problem(line_no, f"{path.name}:{line_no}: not a JSON object")
                continue
            yield line_no, record
    report.positions[str(path)] = Position(offset, line_no)
