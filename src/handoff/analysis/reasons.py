"""Reason codes of per-file analysis errors: stable strings clients may branch on."""

from __future__ import annotations

from typing import Any

from handoff.domain.analysis import Reason

__all__ = ["FileRefused", "Reason", "error"]


class FileRefused(Exception):
    """One input that is not analysed, with its reason; never escapes the analysis package."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def error(path: str, reason: Reason, message: str) -> dict[str, Any]:
    """One per-file error entry, as results carry it."""
    return {"path": path[:300], "reason": reason.value, "message": message}
