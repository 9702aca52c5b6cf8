"""Wall-clock time, behind the Clock port so tests can drive time explicitly."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)
