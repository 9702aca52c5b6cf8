"""The one request pipeline: every tool call, resource read and prompt passes here once.

One middleware does, in order: a correlation id bound to every log line of the request, the
request's deadline (applied here, so a hung dependency turns into `unavailable` for the caller and
a rolled-back unit of work), the span attributes, and on the way out one log line and the metrics.
Tool errors report their code through the request's outcome slot (set by `mcp/errors.py`), so the
outcome never has to be parsed back out of the serialised result.

Labels stay bounded whatever clients send: a tool the server does not have is labelled `unknown`,
at most `max_tools` distinct names are ever used, resource URIs are reduced to their template, and
error codes outside our vocabulary become `internal`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

import anyio
import mcp_types as types
import structlog
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from opentelemetry import trace
from pydantic import ValidationError

from handoff.config import Settings
from handoff.domain.models import ContextType, HandoffType
from handoff.errors import ERROR_CODES, Unavailable
from handoff.logs import get_logger, new_correlation_id
from handoff.mcp import identity
from handoff.mcp.errors import RequestOutcome, current_outcome, deadline_message, error_result
from handoff.mcp.readiness import ContainerGate
from handoff.observability.metrics import Metrics

log = get_logger("handoff.requests")

UNKNOWN_TOOL = "unknown"
OTHER = "other"
_KNOWN_CODES = ERROR_CODES | {"unknown_tool"}
_JSONRPC_CODES = {-32700: "invalid_input", -32600: "invalid_input", -32601: "not_found", -32602: "invalid_input"}
_TOOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_CONTEXT_TYPES = frozenset(t.value for t in ContextType)
_HANDOFF_TYPES = frozenset(t.value for t in HandoffType)
# handoff://<collection>/<id>/<facet>: which id each collection has, and the facets that exist.
_RESOURCE_IDS = {"sessions": "{session_key}", "handoffs": "{handoff_id}", "agents": "{agent}"}
_RESOURCE_FACETS = frozenset({"context", "lifecycle", "inbox"})
_TIMED_METHODS = frozenset(
    {"tools/call", "resources/read", "resources/subscribe", "prompts/get", "completion/complete"}
)


class RequestPipeline:
    def __init__(
        self, settings: Settings, metrics: Metrics | None, *, max_tools: int = 64, gate: ContainerGate | None = None
    ) -> None:
        self._gate = gate  # over stdio: requests that need storage wait here until it is up
        self._deadline = settings.limits.request_timeout_seconds
        # analyze_codebase has its own wall-time limit; never cut it short from outside.
        self._analysis_deadline = max(self._deadline, settings.analysis.limits.max_seconds + 15.0)
        self._metrics = metrics
        self._max_tools = max_tools
        self._tools: set[str] = set()
        self._logs = logging.getLogger("handoff.requests")

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.request_id is None:  # notifications: no answer, nothing to time
            return await call_next(ctx)
        method = ctx.method
        params = ctx.params if isinstance(ctx.params, dict) else {}
        fields: dict[str, Any] = {"correlation_id": new_correlation_id(), "method": method}
        name: Any = None
        label = method
        if method == "tools/call":
            name = params.get("name")
            fields["tool"] = name
            arguments = params.get("arguments")
            if isinstance(arguments, dict) and isinstance(arguments.get("session_key"), str):
                fields["session_key"] = arguments["session_key"][:128]
        elif method == "resources/read":
            fields["uri"] = str(params.get("uri", ""))[:300]
            label, session_key = resource_label(fields["uri"])
            if session_key is not None:
                fields["session_key"] = session_key[:128]
        elif method == "prompts/get":
            name = params.get("name")
        span = trace.get_current_span()
        recording = span.is_recording()
        if recording:
            span.set_attributes(_span_attributes(fields))
        outcome = RequestOutcome()
        slot = current_outcome.set(outcome)
        caller = identity.bind(identity.caller_of(ctx.request))  # the token's agent over HTTP, else None
        deadline = self._analysis_deadline if name == "analyze_codebase" else self._deadline
        status, result = "ok", None
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(**fields):
            try:
                if method in _TIMED_METHODS:
                    with anyio.fail_after(deadline):
                        if self._gate is not None and not self._gate.ready:
                            await self._gate.wait()
                        result = await call_next(ctx)
                else:
                    result = await call_next(ctx)
                return result
            except TimeoutError:
                status, outcome.error_code = "error", "unavailable"
                log.warning("request deadline exceeded", deadline_seconds=deadline)
                if method == "tools/call":
                    result = error_result(
                        "unavailable", deadline_message(deadline), {"deadline_seconds": deadline}
                    ).model_dump(by_alias=True, exclude_none=True)
                    return result
                raise MCPError(code=types.INTERNAL_ERROR, message=deadline_message(deadline)) from None
            except MCPError as error:
                status, outcome.error_code = "error", _rpc_error_code(error)
                raise
            except Unavailable as error:  # start-up failed while this request waited at the gate
                status, outcome.error_code = "error", error.code
                if method == "tools/call":
                    result = error_result(error.code, error.message, error.details).model_dump(
                        by_alias=True, exclude_none=True
                    )
                    return result
                raise MCPError(code=types.INTERNAL_ERROR, message=error.message) from None
            except ValidationError:
                status, outcome.error_code = "error", "invalid_input"
                raise
            except Exception:
                status, outcome.error_code = "error", outcome.error_code or "internal"
                raise
            except BaseException:
                status = "cancelled"
                raise
            finally:
                current_outcome.reset(slot)
                identity.unbind(caller)
                seconds = time.perf_counter() - started
                if isinstance(result, dict) and result.get("isError") is True:
                    status = "error"
                    outcome.error_code = outcome.error_code or _sdk_refusal(result)
                code = outcome.error_code
                if status == "error" and code not in _KNOWN_CODES:
                    code = "internal"
                self._finish(method, name, label, status, code, seconds, result, span if recording else None)

    def _finish(
        self,
        method: str,
        name: Any,
        label: str,
        status: str,
        code: str | None,
        seconds: float,
        result: Any,
        span: trace.Span | None,
    ) -> None:
        if self._logs.isEnabledFor(logging.INFO):  # the line is cheap to skip when it is off
            shown = status if status != "error" else f"error {code}"
            log.info("request", outcome=shown, duration_ms=round(seconds * 1000, 2))
        metrics = self._metrics
        if metrics is not None:
            if method == "tools/call":
                tool = self._tool_label(name, known=code != "unknown_tool")
                metrics.observe_tool_call(tool, status, seconds, code)
                if status == "ok" and isinstance(result, dict):
                    self._record_effects(tool, result)
            elif method == "resources/read":
                metrics.observe_resource_read(label, status, seconds, code)
        if span is not None:
            span.set_attribute("handoff.outcome", status)
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


def _sdk_refusal(result: dict[str, Any]) -> str:
    """The code in an error result nothing of ours noted (HandoffServer notes argument and unknown-tool errors)."""
    content = result.get("content")
    first = content[0] if isinstance(content, list) and content else None
    text = str(first.get("text", "")) if isinstance(first, dict) else ""
    if text.startswith("{"):
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            code = payload["error"].get("code")
            return code if code in _KNOWN_CODES else "internal"
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
    if isinstance(data, dict) and data.get("code") in _KNOWN_CODES:
        return str(data["code"])
    return _JSONRPC_CODES.get(error.error.code, "internal")


def _span_attributes(fields: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {"handoff.correlation_id": fields["correlation_id"]}
    if isinstance(fields.get("tool"), str):
        attributes["handoff.tool"] = fields["tool"][:64]
    if "session_key" in fields:
        attributes["handoff.session_key"] = fields["session_key"]
    if "uri" in fields:
        attributes["handoff.resource"] = resource_label(fields["uri"])[0]
    return attributes
