"""Retention policies: how long a finished session stays writable-adjacent, readable, and kept at all.

A session that stopped (completed or expired) waits `archive_after` before it is archived
(read-only, stored compressed), then `purge_after` more before it is deleted; `legal_hold`
sessions are never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from handoff.errors import InvalidInput

DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    name: str
    archive_after: timedelta
    purge_after: timedelta | None  # None: never purged
    description: str


POLICIES: dict[str, RetentionPolicy] = {
    p.name: p
    for p in (
        RetentionPolicy("short", 1 * DAY, 7 * DAY, "archived a day after it stops, deleted a week later"),
        RetentionPolicy("standard", 7 * DAY, 90 * DAY, "archived a week after it stops, deleted 90 days later"),
        RetentionPolicy("extended", 30 * DAY, 365 * DAY, "archived a month after it stops, deleted a year later"),
        RetentionPolicy("legal_hold", 7 * DAY, None, "archived a week after it stops, never deleted"),
    )
}
DEFAULT_POLICY = "standard"
RETENTION_NAMES = tuple(POLICIES)


def policy_named(name: str) -> RetentionPolicy:
    try:
        return POLICIES[name]
    except KeyError:
        raise InvalidInput(
            f"retention_policy must be one of {', '.join(POLICIES)}; got {name!r}", {"field": "retention_policy"}
        ) from None
