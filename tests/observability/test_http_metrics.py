"""The real server over loopback HTTP: /metrics after known calls, and spans exported over OTLP."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from mcp.client import Client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import structured, tool_error
from tests.e2e.servers import http_server
from tests.observability.conftest import Scrape
from tests.observability.test_tracing import otlp_collector

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def get_metrics(base: str) -> Scrape:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{base}/metrics")
    assert response.status_code == 200
    return Scrape(response.text, response.headers["content-type"])


async def test_metrics_endpoint_counts_calls_and_reads_the_database(tmp_path: Path) -> None:
    with http_server(f"sqlite:///{tmp_path / 'm.db'}") as server, anyio.fail_after(60):
        async with Client(server.url) as client:
            structured(await client.call_tool("register_session", {"session_key": "s1", "source_agent": "a"}))
            structured(
                await client.call_tool(
                    "update_context", {"session_key": "s1", "context_type": "file", "content": "print('hi')\n"}
                )
            )
            assert tool_error(await client.call_tool("get_session", {"session_key": "ghost"}))["code"] == "not_found"
            structured(
                await client.call_tool(
                    "request_handoff", {"session_key": "s1", "target_agent": "b", "handoff_type": "full_handoff"}
                )
            )
        m = await get_metrics(server.base)

    assert m.content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert m.value("handoff_tool_calls_total", tool="register_session", outcome="ok") == 1
    assert m.value("handoff_tool_errors_total", tool="get_session", code="not_found") == 1
    assert m.value("handoff_tool_duration_seconds_count", tool="update_context") == 1
    assert m.value("handoff_context_appended_bytes_total", context_type="file") == len("print('hi')\n")
    assert m.value("handoff_handoffs_requested_total", handoff_type="full_handoff") == 1
    assert m.value("handoff_sessions", status="active") == 1
    assert m.value("handoff_handoffs", handoff_type="full_handoff", status="pending") == 1
    assert m.value("handoff_ready") == 1
    assert m.value("handoff_dependency_up", dependency="database") == 1
    assert m.value("handoff_circuit_breaker_state", breaker="database") == 0
    assert m.value("handoff_db_pool_checked_out", pool="sqlite_requests") == 0
    assert m.value("handoff_cache_misses_total", backend="memory") is not None
    assert (m.value("process_resident_memory_bytes") or 0) > 0


async def test_spans_reach_the_configured_otlp_endpoint(tmp_path: Path) -> None:
    with otlp_collector() as (endpoint, received):
        env = {"HANDOFF_TRACING__OTLP_ENDPOINT": endpoint}
        with http_server(f"sqlite:///{tmp_path / 't.db'}", **env) as server, anyio.fail_after(60):
            async with Client(server.url) as client:
                structured(await client.call_tool("register_session", {"session_key": "s1", "source_agent": "a"}))
        # The server has stopped (SIGTERM): shutdown flushed the batch of spans.
    spans = []
    for _path, _type, body, _headers in received:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans += [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    (tool,) = [s for s in spans if s.name == "tools/call register_session"]
    attributes = {a.key: a.value.string_value for a in tool.attributes}
    assert attributes["handoff.tool"] == "register_session"
    assert attributes["handoff.session_key"] == "s1"
    assert attributes["handoff.outcome"] == "ok"
    db = [s for s in spans if s.name == "db.transaction" and s.parent_span_id == tool.span_id]
    assert db, [s.name for s in spans]
