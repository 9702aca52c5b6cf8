"""Opaque page cursors and page-size checks shared by every listing."""

from __future__ import annotations

import base64
import binascii
import math
from datetime import UTC, datetime, timedelta

from handoff.errors import InvalidInput

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def encode_cursor(prefix: str, value: int) -> str:
    return base64.urlsafe_b64encode(f"{prefix}:{value}".encode()).decode().rstrip("=")


# The largest value a BIGINT column holds: a forged cursor beyond it must be refused here, not overflow in SQL.
MAX_POSITION = 2**63 - 1


def decode_cursor(cursor: str, *, prefix: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        number = int(value)
        if kind != prefix or not 0 <= number <= MAX_POSITION:
            raise ValueError(kind)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidInput(
            "cursor is not one this server issued; pass the next_cursor value from the previous page",
            {"field": "cursor"},
        ) from None
    return number


def encode_position(prefix: str, at: datetime, key: str) -> str:
    """A cursor for newest-first listings: the (timestamp, key) of the last row shown."""
    micros = (at - _EPOCH) // _MICROSECOND
    return base64.urlsafe_b64encode(f"{prefix}:{micros}:{key}".encode()).decode().rstrip("=")


def decode_position(cursor: str, *, prefix: str) -> tuple[datetime, str]:
    try:
        kind, micros, key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":")
        at = _EPOCH + int(micros) * _MICROSECOND
        if kind != prefix or not (key.isascii() and key.isalnum()):
            raise ValueError(kind)
    except (ValueError, OverflowError, UnicodeDecodeError, binascii.Error):
        raise InvalidInput(
            "cursor is not one this server issued; pass the next_cursor value from the previous page",
            {"field": "cursor"},
        ) from None
    return at, key


def check_limit(limit: int, maximum: int) -> int:
    if not 1 <= limit <= maximum:
        raise InvalidInput(f"limit must be between 1 and {maximum}, got {limit}", {"field": "limit"})
    return limit


def encode_ranked(prefix: str, score: float, key: int, snapshot: int, fingerprint: str) -> str:
    """A cursor for ranked listings: the (score, key) of the last row shown, the snapshot the first page
    fixed (rows added since are left out, so pages neither repeat nor skip), and what was searched."""
    raw = f"{prefix}:{score!r}:{key}:{snapshot}:{fingerprint}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_ranked(cursor: str, *, prefix: str, fingerprint: str) -> tuple[float, int, int]:
    """(score, key, snapshot) of a cursor `encode_ranked` made for this same search."""
    try:
        kind, score_text, key_text, snapshot_text, made_for = (
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":")
        )
        score, key, snapshot = float(score_text), int(key_text), int(snapshot_text)
        if (
            kind != prefix
            or not math.isfinite(score)
            or not (0 <= key <= MAX_POSITION and 0 <= snapshot <= MAX_POSITION)
        ):
            raise ValueError(kind)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidInput(
            "cursor is not one this server issued; pass the next_cursor value from the previous page",
            {"field": "cursor"},
        ) from None
    if made_for != fingerprint:
        raise InvalidInput(
            "cursor belongs to a different search: pass it with the same query and filters that returned it",
            {"field": "cursor"},
        )
    return score, key, snapshot
