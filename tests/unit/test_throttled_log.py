from __future__ import annotations

from typing import Any

from handoff.logs import Throttled


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


def test_a_repeated_event_is_logged_once_per_interval_with_the_count_since_the_last_line() -> None:
    now = [100.0]
    recorder = Recorder()
    throttled = Throttled(recorder, "refused", interval_seconds=60, clock=lambda: now[0])
    throttled.note(who="a")
    for _ in range(999):
        now[0] += 0.01
        throttled.note(who="a")
    assert recorder.lines == [("refused", {"occurrences": 1, "per_seconds": 60, "who": "a"})]
    now[0] = 161.0
    throttled.note(who="b")
    assert recorder.lines[-1] == ("refused", {"occurrences": 1000, "per_seconds": 60, "who": "b"})
    assert len(recorder.lines) == 2
