"""MCP middleware: metrics for every tool call and resource read, and our attributes on the SDK's span.

It reads what is already on the wire: the tool name and session key from the request, the outcome
and our error code from the serialised result (`isError` + `{"error": {"code"}}`), the appended
entry's type and size from `structuredContent.entry`, the handoff type from
`structuredContent.handoff`. Services need no metrics hook.

Labels stay bounded whatever clients send: a tool the server does not have is labelled `unknown`
(the SDK answers it with "Unknown tool: ..."), at most `max_tools` distinct names are ever used,
resource URIs are reduced to their template (`handoff://sessions/{session_key}/context`), and error
codes outside our vocabulary become `internal`.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

import structlog
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from opentelemetry import trace
from pydantic import ValidationError

from handoff.domain.models import ContextType, HandoffType
from handoff.observability.metrics import Metrics

ERROR_CODES = frozenset(
    {
        "not_found",
        "already_exists",
        "invalid_state",
        "invalid_input",
        "forbidden",
        "conflict",
        "unavailable",
        "internal",
        "unknown_tool",
    }
)
_JSONRPC_CODES = {-32700: "invalid_input", -32600: "invalid_input", -32601: "not_found", -32602: "invalid_input"}
_TOOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_CONTEXT_TYPES = frozenset(t.value for t in ContextType)
_HANDOFF_TYPES = frozenset(t.value for t in HandoffType)
# handoff://<collection>/<id>/<facet>: which id each collection has, and the facets that exist.
_RESOURCE_IDS = {"sessions": "{session_key}", "handoffs": "{handoff_id}"}
_RESOURCE_FACETS = frozenset({"context", "lifecycle"})
UNKNOWN_TOOL = "unknown"
OTHER = "other"


class ObservabilityMiddleware:
    """Counts and times tool calls and resource reads; tags the current (SDK request) span."""

    def __init__(self, metrics: Metrics | None, *, max_tools: int = 64) -> None:
        self._metrics = metrics
        self._max_tools = max_tools
        self._tools: set[str] = set()

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.request_id is None:
            return await call_next(ctx)
        params = ctx.params if isinstance(ctx.params, dict) else {}
        if ctx.method == "tools/call":
            return await self._tool_call(ctx, call_next, params)
        if ctx.method == "resources/read":
            return await self._resource_read(ctx, call_next, params)
        return await call_next(ctx)

    async def _tool_call(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, params: dict[str, Any]
    ) -> HandlerResult:
        name = params.get("name")
        raw_arguments = params.get("arguments")
        arguments: dict[str, Any] = raw_arguments if isinstance(raw_arguments, dict) else {}
        span = trace.get_current_span()
        recording = span.is_recording()
        if recording:
            span.set_attributes(_request_attributes(name, arguments))
        outcome, code, result = "ok", None, None
        started = time.perf_counter()
        try:
            result = await call_next(ctx)
        except MCPError as error:
            outcome, code = "error", _rpc_error_code(error)
            raise
        except ValidationError:
            outcome, code = "error", "invalid_input"
            raise
        except Exception:
            outcome, code = "error", "internal"
            raise
        except BaseException:
            outcome = "cancelled"
            raise
        finally:
            seconds = time.perf_counter() - started
            if isinstance(result, dict) and result.get("isError") is True:
                outcome, code = "error", tool_error_code(result)
            tool = self._tool_label(name, known=code != "unknown_tool")
            if self._metrics is not None:
                self._metrics.observe_tool_call(tool, outcome, seconds, code)
                if outcome == "ok" and isinstance(result, dict):
                    self._record_effects(tool, result)
            if recording:
                span.set_attribute("handoff.outcome", outcome)
                if code is not None:
                    span.set_attribute("handoff.error.code", code)
        return result

    async def _resource_read(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, params: dict[str, Any]
    ) -> HandlerResult:
        uri = str(params.get("uri", ""))
        template, session_key = resource_label(uri)
        span = trace.get_current_span()
        recording = span.is_recording()
        if recording:
            span.set_attribute("handoff.resource", template)
            if session_key is not None:
                span.set_attribute("handoff.session_key", session_key[:128])
            _tag_correlation_id(span)
        outcome, code = "ok", None
        started = time.perf_counter()
        try:
            return await call_next(ctx)
        except MCPError as error:
            outcome, code = "error", _rpc_error_code(error)
            raise
        except ValidationError:
            outcome, code = "error", "invalid_input"
            raise
        except Exception:
            outcome, code = "error", "internal"
            raise
        except BaseException:
            outcome = "cancelled"
            raise
        finally:
            if self._metrics is not None:
                self._metrics.observe_resource_read(template, outcome, time.perf_counter() - started, code)
            if recording:
                span.set_attribute("handoff.outcome", outcome)
                if code is not None:
                    span.set_attribute("handoff.error.code", code)

    def _tool_label(self, name: object, *, known: bool) -> str:
        if not known or not isinstance(name, str) or not _TOOL_NAME.match(name):
            return UNKNOWN_TOOL
        if name in self._tools:
            return name
        if len(self._tools) >= self._max_tools:
            return OTHER
        self._tools.add(name)
        return name

    def _record_effects(self, tool: str, result: dict[str, Any]) -> None:
        assert self._metrics is not None
        structured = result.get("structuredContent")
        if not isinstance(structured, dict):
            return
        entry = structured.get("entry")
        if isinstance(entry, dict) and entry.get("replayed") is not True:
            size = entry.get("content_bytes")
            if isinstance(size, int):
                kind = entry.get("context_type")
                self._metrics.record_context_append(kind if kind in _CONTEXT_TYPES else OTHER, size)
        if tool == "request_handoff":
            handoff = structured.get("handoff")
            if isinstance(handoff, dict):
                kind = handoff.get("handoff_type")
                self._metrics.record_handoff_requested(kind if kind in _HANDOFF_TYPES else OTHER)


def tool_error_code(result: dict[str, Any]) -> str:
    """Our error code from an `isError` tool result; the SDK's own refusals are classified by text."""
    content = result.get("content")
    text = ""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        text = str(content[0].get("text", ""))
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        code = payload["error"].get("code")
        return code if code in ERROR_CODES else "internal"
    if text.startswith("Unknown tool"):
        return "unknown_tool"
    if "validation error" in text:  # the SDK rejected the arguments against the tool's schema
        return "invalid_input"
    return "internal"


def resource_label(uri: str) -> tuple[str, str | None]:
    """(the URI's template, the session key in it if any): bounded labels for any URI a client sends."""
    parts = urlsplit(uri)
    if parts.scheme != "handoff" or parts.netloc not in _RESOURCE_IDS:
        return OTHER, None
    base = f"handoff://{parts.netloc}"
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        return base, None
    identifier = segments[0]
    session_key = identifier if parts.netloc == "sessions" else None
    label = f"{base}/{_RESOURCE_IDS[parts.netloc]}"
    if len(segments) == 1:
        return label, session_key
    if len(segments) == 2 and segments[1] in _RESOURCE_FACETS:
        return f"{label}/{segments[1]}", session_key
    return OTHER, session_key


def _rpc_error_code(error: MCPError) -> str:
    data = error.error.data
    if isinstance(data, dict) and data.get("code") in ERROR_CODES:
        return str(data["code"])
    return _JSONRPC_CODES.get(error.error.code, "internal")


def _request_attributes(name: object, arguments: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if isinstance(name, str):
        attributes["handoff.tool"] = name[:64]
    key = arguments.get("session_key")
    if isinstance(key, str):
        attributes["handoff.session_key"] = key[:128]
    correlation_id = structlog.contextvars.get_contextvars().get("correlation_id")
    if isinstance(correlation_id, str):
        attributes["handoff.correlation_id"] = correlation_id
    return attributes


def _tag_correlation_id(span: trace.Span) -> None:
    correlation_id = structlog.contextvars.get_contextvars().get("correlation_id")
    if isinstance(correlation_id, str):
        span.set_attribute("handoff.correlation_id", correlation_id)
