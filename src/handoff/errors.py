"""The error tree every layer raises and every entry point maps.

Each class carries a stable `code` that clients may branch on; the message is written for the
reader of the error (a model or a person) and never contains internal details such as SQL.
"""

from __future__ import annotations

from typing import Any, ClassVar


class HandoffError(Exception):
    """Base of every anticipated failure."""

    code: ClassVar[str] = "handoff_error"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class NotFound(HandoffError):
    code = "not_found"


class AlreadyExists(HandoffError):
    code = "already_exists"


class InvalidState(HandoffError):
    code = "invalid_state"


class InvalidInput(HandoffError):
    code = "invalid_input"


class Forbidden(HandoffError):
    code = "forbidden"


class Conflict(HandoffError):
    code = "conflict"


class Unavailable(HandoffError):
    code = "unavailable"


class DatabaseUnavailable(Unavailable):
    """The database did not answer or failed mid-transaction: transient, safe to retry if idempotent."""


class CannotStart(Unavailable):
    """A command cannot begin: the message names the cause and the fix, in one line for a terminal."""


def _codes(root: type[HandoffError]) -> set[str]:
    found = set()
    for cls in root.__subclasses__():
        found.add(cls.code)
        found |= _codes(cls)
    return found


# Every code a client can see: our classes' codes, plus `internal` for anything unexpected.
ERROR_CODES = frozenset(_codes(HandoffError) | {"internal"})
