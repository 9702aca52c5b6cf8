"""Which log format a file is in, and reading any supported one.

Detection reads the file's first records, never its name alone: agents' logs are renamed, copied
and attached to bug reports. A file that looks like none of the formats gets an error naming what
was seen, so a user knows whether to pass --format or a different file.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from handoff.capture.records import Captured, Position, ReadReport
from handoff.errors import InvalidInput

FORMATS = ("claude-code", "codex", "aider", "mini-swe-agent", "swe-agent")
_SNIFF_BYTES = 64 * 1024


class LogFormatError(InvalidInput):
    """The file is not a log we can read (wrong kind of file, or an unknown format)."""


def check_readable_file(path: Path) -> None:
    """One clear error for a missing file, a directory, a FIFO or a binary file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise LogFormatError(f"{path}: no such file", {"path": str(path)}) from None
    except OSError as error:
        raise LogFormatError(f"{path}: cannot read it ({error.strerror})", {"path": str(path)}) from None
    if stat.S_ISDIR(info.st_mode):
        raise LogFormatError(f"{path} is a directory; give the log file inside it", {"path": str(path)})
    if not stat.S_ISREG(info.st_mode):
        raise LogFormatError(f"{path} is not a regular file (a FIFO, socket or device)", {"path": str(path)})
    if not os.access(path, os.R_OK):
        raise LogFormatError(f"{path}: permission denied", {"path": str(path)})
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if b"\x00" in head:
        raise LogFormatError(f"{path} is a binary file, not an agent log", {"path": str(path)})


def detect_format(path: Path) -> str:
    check_readable_file(path)
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES).decode("utf-8", "replace")
    stripped = head.lstrip()
    if stripped.startswith("# aider chat started at") or "\n# aider chat started at" in head[:4000]:
        return "aider"
    first_line = stripped.split("\n", 1)[0]
    record = _json_object(first_line)
    if record is not None:
        found = _format_of_record(record)
        if found:
            return found
        for line in stripped.split("\n")[1:40]:
            other = _json_object(line)
            if other is not None and (found := _format_of_record(other)):
                return found
    if stripped.startswith(("{", "[")):
        if '"trajectory_format"' in head or ('"messages"' in head and '"info"' in head):
            return "mini-swe-agent"
        if '"history"' in head and ('"trajectory"' in head or '"environment"' in head):
            return "swe-agent"
        if stripped.startswith("[") and '"role"' in head:
            return "mini-swe-agent"
    seen = "JSON lines" if record is not None else "JSON" if stripped.startswith(("{", "[")) else "text"
    raise LogFormatError(
        f"{path}: not a log format handoff reads (saw {seen}); supported: {', '.join(FORMATS)}",
        {"path": str(path), "detected": seen},
    )


def _json_object(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{") or not line.endswith("}"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _format_of_record(record: dict[str, Any]) -> str | None:
    kind = record.get("type")
    if "payload" in record and kind in ("session_meta", "response_item", "event_msg", "turn_context", "compacted"):
        return "codex"
    if "sessionId" in record or "parentUuid" in record or kind in ("summary", "file-history-snapshot"):
        return "claude-code"
    if kind in ("user", "assistant") and "message" in record:
        return "claude-code"
    if "instructions" in record and "id" in record and "timestamp" in record:
        return "codex"  # the legacy rollout header
    if record.get("record_type") == "state" or (
        kind in ("message", "function_call", "reasoning") and "payload" not in record
    ):
        return "codex"
    return None


def read_log(path: Path, fmt: str, report: ReadReport, starts: dict[str, Position] | None = None) -> Iterator[Captured]:
    """Entries of a log in a known format, streamed where the format allows it.

    JSON-lines formats resume at `starts` (per file) and report where they stopped; the others
    are read whole (re-imported records are skipped by their ids).
    """
    report.format = fmt
    if fmt == "claude-code":
        from handoff.capture.claude_code import read_claude_code

        yield from read_claude_code(path, report, starts)
    elif fmt == "codex":
        from handoff.capture.codex import read_codex

        yield from read_codex(path, report, starts)
    elif fmt == "aider":
        from handoff.capture.aider import read_aider

        yield from read_aider(path, report)
    elif fmt in ("mini-swe-agent", "swe-agent"):
        from handoff.capture.trajectories import read_trajectory

        try:
            with path.open("r", encoding="utf-8", errors="replace") as handle:
                data = json.load(handle)
        except ValueError as error:
            raise LogFormatError(f"{path}: not valid JSON ({error})", {"path": str(path)}) from None
        yield from read_trajectory(data, report)
    else:
        raise LogFormatError(f"unknown format {fmt!r}; supported: {', '.join(FORMATS)}", {"format": fmt})
