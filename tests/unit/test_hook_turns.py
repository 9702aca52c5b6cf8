"""Hook workers take turns per transcript: one imports, the others leave a note and go."""

from __future__ import annotations

import fcntl
import hashlib
import tempfile
from pathlib import Path

from handoff.importer import coalesced_turns


def _lock_path(transcript: Path) -> Path:
    digest = hashlib.sha256(str(transcript.resolve()).encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"handoff-hook-{digest}.lock"


def test_a_worker_finding_the_transcript_busy_leaves_a_note_and_does_not_import(tmp_path: Path) -> None:
    transcript = tmp_path / "t.jsonl"
    transcript.write_text("{}\n")
    with open(_lock_path(transcript), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another worker is importing
        assert list(coalesced_turns(transcript)) == []
        assert _lock_path(transcript).with_suffix(".again").exists()
    # The lock is free again: the next worker imports once and takes the note away.
    assert len(list(coalesced_turns(transcript))) == 1
    assert not _lock_path(transcript).with_suffix(".again").exists()


def test_the_holder_imports_again_for_a_note_left_while_it_worked(tmp_path: Path) -> None:
    transcript = tmp_path / "t.jsonl"
    transcript.write_text("{}\n")
    turns = 0
    for _ in coalesced_turns(transcript):
        turns += 1
        if turns == 1:
            assert list(coalesced_turns(transcript)) == []  # a second hook fires mid-import
    assert turns == 2
    assert not _lock_path(transcript).with_suffix(".again").exists()
