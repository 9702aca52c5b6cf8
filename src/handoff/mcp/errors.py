"""Mapping our error tree onto MCP: tool-execution errors for tools, JSON-RPC errors for resources.

The SDK would otherwise answer with `str(exc)`; here a client only ever sees our code and a safe
message, and anything unexpected is logged with the correlation id and answered generically.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

import mcp_types as types
import structlog
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from handoff.errors import HandoffError, InvalidInput, Unavailable
from handoff.logs import get_logger

log = get_logger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

INTERNAL_MESSAGE = "internal error; the server logged it with correlation id {cid}"


class RequestOutcome:
    """What the request pipeline learns from inside a handler: the error code it answered with."""

    __slots__ = ("error_code",)

    def __init__(self) -> None:
        self.error_code: str | None = None


# Set by the request pipeline for each request; handlers write the outcome into it (a mutable
# slot, so it is seen however the SDK schedules the handler).
current_outcome: ContextVar[RequestOutcome | None] = ContextVar("current_outcome", default=None)


def _note_outcome(code: str) -> None:
    outcome = current_outcome.get()
    if outcome is not None:
        outcome.error_code = code


def deadline_message(deadline: float | None) -> str:
    return f"the request did not finish within its {deadline:g}s deadline; try again shortly"


def _correlation_id() -> str:
    return str(structlog.contextvars.get_contextvars().get("correlation_id", "-"))


def error_result(code: str, message: str, details: dict[str, Any]) -> types.CallToolResult:
    payload = {"error": {"code": code, "message": message, "details": details}}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(payload, ensure_ascii=False, default=str))],
        is_error=True,
    )


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn our errors into `isError` results the model can read; hide everything else."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except HandoffError as error:
            log.info("tool refused", tool=fn.__name__, code=error.code, reason=error.message)
            # The SDK passes a CallToolResult through untouched (no output-schema check on errors).
            return refusal(error)  # type: ignore[return-value]
        except Exception:
            cid = _correlation_id()
            log.exception("tool crashed", tool=fn.__name__)
            _note_outcome("internal")
            details = {"correlation_id": cid}
            return error_result("internal", INTERNAL_MESSAGE.format(cid=cid), details)  # type: ignore[return-value]

    return wrapper


def rpc_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Resources and prompts answer with JSON-RPC errors: invalid params for bad input and unknown
    names, internal error (with our code, e.g. `unavailable`) when the server could not answer."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except HandoffError as error:
            raise rpc_error(error) from None
        except MCPError:
            raise
        except Exception:
            cid = _correlation_id()
            log.exception("handler crashed", handler=fn.__name__)
            _note_outcome("internal")
            raise MCPError(code=types.INTERNAL_ERROR, message=INTERNAL_MESSAGE.format(cid=cid)) from None

    return wrapper


def dump(model: Any) -> str:
    """Resource bodies: the same JSON a tool's structured output would carry."""
    return str(model.model_dump_json())


def invalid_arguments(error: ValidationError, where: str) -> InvalidInput:
    """The SDK's pydantic argument errors, in our format: each problem with the field it is in.

    Rejected values are not echoed (they are the caller's data); pydantic's messages name none.
    """
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in item["loc"]) or "arguments"
        problem = "is required" if item["type"] == "missing" else item["msg"][:1].lower() + item["msg"][1:]
        problems.append({"field": field, "problem": problem})
    message = f"invalid arguments for {where}: " + "; ".join(
        f"{p['field']} {p['problem']}" if p["problem"] == "is required" else f"{p['field']}: {p['problem']}"
        for p in problems
    )
    return InvalidInput(message, {"field": problems[0]["field"] if problems else None, "problems": problems})


def refusal(error: HandoffError, outcome: str | None = None) -> types.CallToolResult:
    """A tool's refusal as the result the model reads, with the code (or `outcome`) noted for the metrics."""
    _note_outcome(outcome or error.code)
    return error_result(error.code, error.message, error.details)


def rpc_error(error: HandoffError) -> MCPError:
    """A refusal of a resource read or prompt: a JSON-RPC error whose data carries our code."""
    _note_outcome(error.code)
    # The caller's request was refused (bad input, unknown, not allowed, wrong state): invalid
    # params. The server could not answer (a database outage): an internal error, retryable.
    code = types.INTERNAL_ERROR if isinstance(error, Unavailable) else types.INVALID_PARAMS
    return MCPError(code=code, message=error.message, data={"code": error.code, **error.details})
