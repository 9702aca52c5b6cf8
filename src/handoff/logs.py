"""Structured JSON logs on stderr (stdout belongs to the stdio transport), with a correlation id."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

_configured = False


def configure_logging(level: str = "INFO") -> None:
    """Route structlog and the standard library (SDK, uvicorn) through one JSON renderer on stderr."""
    global _configured
    from handoff.observability.tracing import add_trace_context  # here, not at import: no import cycle

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.ExtraAdder(),  # stdlib `extra={...}` (services log that way) become fields
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_context,  # trace_id/span_id on lines logged inside a span, while tracing is on
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _drop_terminal_colours,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(ensure_ascii=False),
            ],
        )
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn installs its own handlers; make its loggers use ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _configured = True


def _drop_terminal_colours(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """uvicorn adds an ANSI-coloured copy of its message; JSON logs want only the plain one."""
    event_dict.pop("color_message", None)
    return event_dict


def new_correlation_id() -> str:
    return uuid.uuid4().hex[:16]


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


class Throttled:
    """One log line per interval for an event that can repeat thousands of times a second.

    An attacker who makes the server fail the same way in a loop (accepts refused for lack of file
    descriptors, connections over the limit, sessions over a principal's cap) must not be able to fill
    the disk with our log. The first occurrence is logged at once; later ones are counted and the
    count goes out with the next line, at most one per `interval_seconds`.
    """

    def __init__(
        self,
        logger: Any,
        event: str,
        interval_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._event = event
        self._interval = interval_seconds
        self._clock = clock
        self._last: float | None = None
        self._unlogged = 0

    def note(self, **fields: Any) -> None:
        self._unlogged += 1
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return
        self._logger.warning(self._event, occurrences=self._unlogged, per_seconds=self._interval, **fields)
        self._last = now
        self._unlogged = 0
