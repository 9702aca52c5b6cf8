"""build_server(): the MCPServer with our tools, resources, prompts, logging and error mapping."""

from __future__ import annotations

import logging
import time
from typing import Any

import mcp_types as types
import structlog
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

import handoff
from handoff.config import Settings
from handoff.container import Container
from handoff.logs import get_logger, new_correlation_id
from handoff.mcp.analysis_tool import register_analysis_tool
from handoff.mcp.errors import request_deadline
from handoff.mcp.prompts import register_prompts
from handoff.mcp.resources import register_resources
from handoff.mcp.tools import register_tools
from handoff.observability import ObservabilityMiddleware

log = get_logger("handoff.requests")

INSTRUCTIONS = """\
handoff keeps the working context of AI agents and hands it from one agent to another.
As the agent doing the work: register_session once, then update_context as you go (messages,
files you touch, tool calls, system events; metadata.kind = decision|rejected|task|task_done marks
what the next agent must know). When someone else should continue: request_handoff.
As the receiving agent: read the brief in the handoff (or the resume_handoff prompt), then page
through get_context for the full history.
"""

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}


def build_server(container: Container) -> MCPServer:
    server: MCPServer = MCPServer(
        name="handoff",
        title="handoff",
        version=handoff.__version__,
        instructions=INSTRUCTIONS,
        log_level=container.settings.log.level,
        # The SDK's OpenTelemetryMiddleware comes first (its span per request); ours tag it and count.
        middleware=[_request_log, ObservabilityMiddleware(container.metrics), _Deadline(container.settings)],
    )
    register_tools(server, container)
    register_analysis_tool(server, container.analysis)
    register_resources(server, container)
    register_prompts(server, container)
    # 2025-era clients send logging/setLevel; the SDK leaves it unanswered unless we handle it.
    server._lowlevel_server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, _set_level)
    return server


async def _set_level(ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams) -> types.EmptyResult:
    logging.getLogger("handoff").setLevel(_LEVELS.get(params.level, logging.INFO))
    return types.EmptyResult()


class _Deadline:
    """Gives every tool call and resource read its deadline (applied in mcp/errors.py wrappers)."""

    def __init__(self, settings: Settings) -> None:
        self._default = settings.limits.request_timeout_seconds
        # analyze_codebase has its own wall-time limit; never cut it short from outside.
        self._analysis = max(self._default, settings.analysis.limits.max_seconds + 15.0)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params if isinstance(ctx.params, dict) else {}
        tool = params.get("name") if ctx.method == "tools/call" else None
        token = request_deadline.set(self._analysis if tool == "analyze_codebase" else self._default)
        try:
            return await call_next(ctx)
        finally:
            request_deadline.reset(token)


async def _request_log(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """One structured line per request, under a fresh correlation id (never the content)."""
    if ctx.request_id is None:  # notifications
        return await call_next(ctx)
    params = ctx.params if isinstance(ctx.params, dict) else {}
    fields: dict[str, Any] = {"correlation_id": new_correlation_id(), "method": ctx.method}
    if ctx.method == "tools/call":
        fields["tool"] = params.get("name")
        arguments = params.get("arguments")
        if isinstance(arguments, dict) and isinstance(arguments.get("session_key"), str):
            fields["session_key"] = arguments["session_key"][:128]
    elif ctx.method == "resources/read":
        fields["uri"] = str(params.get("uri", ""))[:300]
    started = time.perf_counter()
    with structlog.contextvars.bound_contextvars(**fields):
        outcome = "ok"
        try:
            result = await call_next(ctx)
            # The chain hands back the wire dict, already serialised.
            if isinstance(result, dict) and result.get("isError") is True:
                outcome = "tool_error"
            return result
        except MCPError as error:
            outcome = f"rpc_error {error.error.code}"
            raise
        except BaseException:
            outcome = "exception"
            raise
        finally:
            log.info("request", outcome=outcome, duration_ms=round((time.perf_counter() - started) * 1000, 2))
