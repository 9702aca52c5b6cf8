"""Just enough Markdown reading for the README tests: sections, table rows, bullets, code spans."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_SEPARATOR_CELL = re.compile(r"^:?-{3,}:?$")


def readme() -> str:
    return README.read_text(encoding="utf-8")


def _unfenced(lines: list[str]) -> list[str]:
    """The lines outside fenced code blocks (``` or ~~~), with fenced ones blanked."""
    kept: list[str] = []
    fence: str | None = None
    for line in lines:
        stripped = line.lstrip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            kept.append("")
        elif fence is not None:
            if stripped.startswith(fence):
                fence = None
            kept.append("")
        else:
            kept.append(line)
    return kept


def section(text: str, title: str) -> tuple[str, str]:
    """(heading line, body) of the level-2 section whose title starts with `title`.

    The body runs to the next heading of level 1 or 2 and keeps its `###` subsections.
    """
    lines = _unfenced(text.splitlines())
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if (m := _HEADING.match(line)) and len(m[1]) == 2 and m[2].startswith(title)
        ),
        None,
    )
    assert start is not None, f"README has no `## {title}` section; add it back (tests/docs/test_readme.py reads it)"
    end = next(
        (i for i in range(start + 1, len(lines)) if (m := _HEADING.match(lines[i])) and len(m[1]) <= 2),
        len(lines),
    )
    return lines[start], "\n".join(lines[start + 1 : end])


def split_row(line: str) -> list[str]:
    """The cells of a table row; a `|` inside a code span or escaped as `\\|` does not split."""
    body = line.strip()
    body = body.removeprefix("|")
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    cells: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and body[i + 1 : i + 2] == "|":
            current.append("|")
            i += 2
            continue
        if char == "`":
            ticks = len(body[i:]) - len(body[i:].lstrip("`"))
            close = body.find("`" * ticks, i + ticks)
            if close != -1:
                current.append(body[i : close + ticks])
                i = close + ticks
                continue
        if char == "|":
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        i += 1
    cells.append("".join(current).strip())
    return cells


def table_rows(body: str) -> list[list[str]]:
    """The data rows of every table in `body` (header and separator rows left out)."""
    rows: list[list[str]] = []
    block: list[str] = []
    for line in [*body.splitlines(), ""]:
        if line.lstrip().startswith("|"):
            block.append(line)
            continue
        if len(block) >= 2 and all(_SEPARATOR_CELL.match(c.replace(" ", "")) for c in split_row(block[1])):
            rows.extend(split_row(row) for row in block[2:])
        block = []
    return rows


def blocks(body: str) -> list[str]:
    """Bullets (with their continuation lines) and paragraphs, each joined into one line."""
    found: list[list[str]] = []
    for line in body.splitlines():
        stripped = line.strip()
        if not stripped:
            found.append([])
        elif re.match(r"^[-*+]\s", stripped) or not found:
            found.append([stripped[2:] if re.match(r"^[-*+]\s", stripped) else stripped])
        else:
            found[-1].append(stripped)
    return [" ".join(parts) for parts in found if parts]


def code_spans(text: str) -> list[str]:
    return [m[2].strip() for m in _CODE_SPAN.finditer(text)]
