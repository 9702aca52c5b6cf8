"""The handing-off agent's own note: what it knows that no log shows.

Agent A can say in a few lines what the server can only guess from the history: the goal as it
understood it, where things stand, what it decided and ruled out, and what B should do next. The
brief leads with this note and still adds what the server extracted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from handoff.domain.validation import check_storable_text, json_kind
from handoff.errors import InvalidInput

TEXT_FIELDS = {"goal": 2_000, "state": 4_000, "text": 8_000}
LIST_FIELDS = ("decisions", "rejected", "constraints", "open_tasks", "next_steps")
MAX_LIST_ITEMS = 30
MAX_ITEM_CHARS = 1_000
MAX_NOTE_CHARS = 32_000


@dataclass(frozen=True, slots=True)
class HandoffNote:
    goal: str = ""
    state: str = ""
    decisions: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    open_tasks: tuple[str, ...] = ()
    next_steps: tuple[str, ...] = ()
    text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not any(
            (
                self.goal,
                self.state,
                self.text,
                self.decisions,
                self.rejected,
                self.constraints,
                self.open_tasks,
                self.next_steps,
            )
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name in TEXT_FIELDS:
            if getattr(self, name):
                data[name] = getattr(self, name)
        for name in LIST_FIELDS:
            if getattr(self, name):
                data[name] = list(getattr(self, name))
        return data


def parse_note(raw: Any) -> HandoffNote | None:
    """Validate a note as a caller sent it; every problem names the field (`note.decisions[2]`)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"text": raw}
    if not isinstance(raw, dict):
        raise InvalidInput(f"note must be an object with {_fields_list()}, not {json_kind(raw)}", {"field": "note"})
    unknown = sorted(k for k in raw if k not in TEXT_FIELDS and k not in LIST_FIELDS)
    if unknown:
        raise InvalidInput(
            f"note.{unknown[0]} is not a note field; use {_fields_list()}", {"field": f"note.{unknown[0]}"}
        )
    values: dict[str, Any] = {}
    total = 0
    for name, limit in TEXT_FIELDS.items():
        value = raw.get(name)
        if value is None:
            continue
        values[name] = _text(value, f"note.{name}", limit)
        total += len(values[name])
    for name in LIST_FIELDS:
        value = raw.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise InvalidInput(
                f"note.{name} must be a list of strings, not {json_kind(value)}", {"field": f"note.{name}"}
            )
        if len(value) > MAX_LIST_ITEMS:
            raise InvalidInput(
                f"note.{name} has {len(value)} items; the limit is {MAX_LIST_ITEMS}",
                {"field": f"note.{name}", "limit": MAX_LIST_ITEMS},
            )
        items = tuple(t for i, v in enumerate(value) if (t := _text(v, f"note.{name}[{i}]", MAX_ITEM_CHARS)))
        values[name] = items
        total += sum(len(t) for t in items)
    if total > MAX_NOTE_CHARS:
        raise InvalidInput(
            f"note holds {total} characters; the limit is {MAX_NOTE_CHARS}", {"field": "note", "limit": MAX_NOTE_CHARS}
        )
    note = HandoffNote(**values)
    return None if note.is_empty() else note


def _text(value: Any, field_name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field_name} must be a string, not {json_kind(value)}", {"field": field_name})
    check_storable_text(value, field=field_name)
    text = value.strip()
    if len(text) > limit:
        raise InvalidInput(
            f"{field_name} is {len(text)} characters long; the limit is {limit}",
            {"field": field_name, "limit": limit},
        )
    return text


def _fields_list() -> str:
    return ", ".join([*TEXT_FIELDS, *LIST_FIELDS])
