"""Structured JSON logs on stderr (stdout belongs to the stdio transport), with a correlation id."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import MutableMapping
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
