"""Plain-text tables for the command line: columns sized to their content, and nothing to import.

The commands print a few small tables; a rendering library would cost every start of the server
(structlog loads one for its tracebacks whenever it is installed) for no gain in a terminal.
"""

from __future__ import annotations

MAX_CELL = 100  # a cell longer than this is cut, so one long value cannot push the others off screen


class Table:
    def __init__(self, title: str, *, show_header: bool = True) -> None:
        self.title = title
        self.show_header = show_header
        self.columns: list[str] = []
        self.rows: list[list[str]] = []

    def add_column(self, name: str) -> None:
        self.columns.append(name)

    def add_row(self, *cells: str) -> None:
        self.rows.append([_cell(c) for c in cells])

    def render(self) -> str:
        shown = [self.columns, *self.rows] if self.show_header else self.rows
        widths = [max((len(row[i]) for row in shown if i < len(row)), default=0) for i in range(len(self.columns))]
        lines = [self.title]
        if self.show_header:
            lines.append(_line(self.columns, widths))
            lines.append("  ".join("-" * w for w in widths))
        lines.extend(_line(row, widths) for row in self.rows)
        if not self.rows:
            lines.append("(none)")
        return "\n".join(lines)


def _cell(value: str) -> str:
    text = " ".join(str(value).split())  # one line per row, whatever the value holds
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _line(cells: list[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=False)).rstrip()
