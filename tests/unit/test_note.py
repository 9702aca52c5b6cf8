"""The handing-off agent's note: accepted shapes, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from handoff.domain.note import MAX_LIST_ITEMS, parse_note
from handoff.errors import InvalidInput


def test_a_full_note_is_kept_and_a_string_is_free_text() -> None:
    note = parse_note(
        {
            "goal": " Ship it ",
            "state": "half done",
            "decisions": ["use WAL"],
            "rejected": "pandas",
            "constraints": [],
            "open_tasks": ["docs"],
            "next_steps": ["run bench"],
            "text": "日本語もOK",
        }
    )
    assert note is not None
    assert note.goal == "Ship it" and note.rejected == ("pandas",) and note.text == "日本語もOK"
    assert parse_note("just text") == parse_note({"text": "just text"})
    assert parse_note(None) is None and parse_note({}) is None and parse_note({"decisions": [""]}) is None


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (5, "note"),
        ([1], "note"),
        ({"goal": 3}, "note.goal"),
        ({"decisions": "ok", "rejected": [1]}, "note.rejected[0]"),
        ({"next_steps": {"a": 1}}, "note.next_steps"),
        ({"mood": "happy"}, "note.mood"),
        ({"goal": "x" * 2001}, "note.goal"),
        ({"open_tasks": ["x"] * (MAX_LIST_ITEMS + 1)}, "note.open_tasks"),
        ({"decisions": ["x" * 1001]}, "note.decisions[0]"),
        ({"text": "nul\x00here"}, "note.text"),
        ({"state": "lone \ud800 surrogate"}, "note.state"),
        ({"decisions": ["y" * 1000] * 30, "rejected": ["y" * 1000] * 5}, "note"),
    ],
)
def test_bad_notes_are_invalid_input_naming_the_field(raw: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_note(raw)
    assert caught.value.details["field"] == field
