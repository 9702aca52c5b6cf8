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

import anyio
import mcp_types as types
import structlog
from mcp.shared.exceptions import MCPError

from handoff.errors import HandoffError, InvalidInput, NotFound
from handoff.logs import get_logger

log = get_logger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

INTERNAL_MESSAGE = "internal error; the server logged it with correlation id {cid}"

# Set per request by the server's middleware; None (no deadline) outside a request, e.g. in tests
# that call a handler directly. A hung dependency then cannot pile requests up: past the deadline
# the work is cancelled (units of work roll back) and the caller gets `unavailable`.
request_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)


def _deadline_message(deadline: float | None) -> str:
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
        deadline = request_deadline.get()
        try:
            with anyio.fail_after(deadline):
                return await fn(*args, **kwargs)
        except TimeoutError:
            log.warning("tool deadline exceeded", tool=fn.__name__, deadline_seconds=deadline)
            return error_result("unavailable", _deadline_message(deadline), {"deadline_seconds": deadline})  # type: ignore[return-value]
        except HandoffError as error:
            log.info("tool refused", tool=fn.__name__, code=error.code, reason=error.message)
            # The SDK passes a CallToolResult through untouched (no output-schema check on errors).
            return error_result(error.code, error.message, error.details)  # type: ignore[return-value]
        except Exception:
            cid = _correlation_id()
            log.exception("tool crashed", tool=fn.__name__)
            details = {"correlation_id": cid}
            return error_result("internal", INTERNAL_MESSAGE.format(cid=cid), details)  # type: ignore[return-value]

    return wrapper


def resource_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Resources answer with JSON-RPC errors: invalid params for bad or unknown URIs."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        deadline = request_deadline.get()
        try:
            with anyio.fail_after(deadline):
                return await fn(*args, **kwargs)
        except TimeoutError:
            log.warning("resource deadline exceeded", resource=fn.__name__, deadline_seconds=deadline)
            raise MCPError(code=types.INTERNAL_ERROR, message=_deadline_message(deadline)) from None
        except HandoffError as error:
            code = types.INVALID_PARAMS if isinstance(error, NotFound | InvalidInput) else types.INTERNAL_ERROR
            raise MCPError(code=code, message=error.message, data={"code": error.code, **error.details}) from None
        except MCPError:
            raise
        except Exception:
            cid = _correlation_id()
            log.exception("resource crashed", resource=fn.__name__)
            raise MCPError(code=types.INTERNAL_ERROR, message=INTERNAL_MESSAGE.format(cid=cid)) from None

    return wrapper


def dump(model: Any) -> str:
    """Resource bodies: the same JSON a tool's structured output would carry."""
    return str(model.model_dump_json())
