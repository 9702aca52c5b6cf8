"""Tracing: the SDK's span per tool call carries our attributes, with DB and cache spans beneath it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
from mcp.client import Client
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from handoff.container import Container
from handoff.errors import DatabaseUnavailable
from handoff.observability.tracing import Tracing, build_otlp_provider, configure_tracing, tracing_active
from tests.conftest import structured, tool_error
from tests.observability.conftest import finished

pytestmark = pytest.mark.anyio

SECRET = "the content must never reach a span: hunter2"


def server_span(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    matches = [s for s in spans if s.name == name and s.kind is SpanKind.SERVER]
    assert len(matches) == 1, [(s.name, s.kind) for s in spans]
    return matches[0]


def children(spans: list[ReadableSpan], parent: ReadableSpan, name: str | None = None) -> list[ReadableSpan]:
    assert parent.context is not None
    return [
        s
        for s in spans
        if s.parent is not None and s.parent.span_id == parent.context.span_id and (name is None or s.name == name)
    ]


async def test_tool_call_span_has_database_and_cache_spans_beneath_it(
    client: Client, spans: InMemorySpanExporter, observed: Container
) -> None:
    structured(await client.call_tool("register_session", {"session_key": "s1", "source_agent": "a"}))
    structured(
        await client.call_tool("update_context", {"session_key": "s1", "context_type": "message", "content": SECRET})
    )
    structured(await client.call_tool("get_context", {"session_key": "s1"}))  # miss: read, then cache.set
    spans.clear()
    structured(await client.call_tool("get_context", {"session_key": "s1"}))  # hit, inside the transaction

    got = finished(spans)
    tool = server_span(got, "tools/call get_context")
    assert tool.attributes is not None
    assert tool.attributes["handoff.tool"] == "get_context"
    assert tool.attributes["handoff.session_key"] == "s1"
    assert tool.attributes["handoff.outcome"] == "ok"
    assert isinstance(tool.attributes["handoff.correlation_id"], str)
    assert "handoff.error.code" not in tool.attributes
    (db,) = children(got, tool, "db.transaction")
    assert db.kind is SpanKind.CLIENT
    assert db.attributes is not None
    assert db.attributes["db.system.name"] == observed.engine.dialect.name
    assert db.attributes["handoff.db.mode"] == "read"
    assert db.status.status_code is not StatusCode.ERROR
    (cache,) = children(got, db, "cache.get")
    assert cache.attributes is not None
    assert cache.attributes["handoff.cache.hit"] is True
    assert cache.attributes["handoff.cache.key_kind"] == "page"
    assert cache.attributes["handoff.cache.backend"] == "memory"
    # Nothing in any span, ours or the SDK's, carries the content.
    assert all(SECRET not in str(value) for s in got for value in (s.attributes or {}).values())


async def test_first_read_caches_the_page_after_its_transaction(client: Client, spans: InMemorySpanExporter) -> None:
    structured(await client.call_tool("register_session", {"session_key": "s1", "source_agent": "a"}))
    spans.clear()
    structured(await client.call_tool("get_context", {"session_key": "s1"}))
    got = finished(spans)
    tool = server_span(got, "tools/call get_context")
    (db,) = children(got, tool, "db.transaction")
    (miss,) = children(got, db, "cache.get")
    assert miss.attributes is not None and miss.attributes["handoff.cache.hit"] is False
    (stored,) = children(got, tool, "cache.set")
    assert stored.attributes is not None and stored.attributes["handoff.cache.value_bytes"] > 0


async def test_write_then_refusal_are_told_apart_on_the_spans(client: Client, spans: InMemorySpanExporter) -> None:
    structured(await client.call_tool("register_session", {"session_key": "s1", "source_agent": "a"}))
    assert tool_error(await client.call_tool("get_session", {"session_key": "ghost"}))["code"] == "not_found"
    got = finished(spans)
    register = server_span(got, "tools/call register_session")
    (write,) = children(got, register, "db.transaction")
    assert write.attributes is not None
    assert write.attributes["handoff.db.mode"] == "write"
    assert write.attributes["handoff.db.committed"] is True

    refused = server_span(got, "tools/call get_session")
    assert refused.attributes is not None
    assert refused.attributes["handoff.outcome"] == "error"
    assert refused.attributes["handoff.error.code"] == "not_found"
    (read,) = children(got, refused, "db.transaction")
    # The database answered; the caller asked for something that is not there: not a DB failure.
    assert read.status.status_code is not StatusCode.ERROR
    assert read.attributes is not None and read.attributes["handoff.error.code"] == "not_found"


async def test_open_breaker_marks_the_database_span_failed(
    client: Client, spans: InMemorySpanExporter, observed: Container
) -> None:
    assert observed.db_breaker is not None
    for _ in range(observed.settings.db.breaker_failure_threshold):
        with pytest.raises(DatabaseUnavailable):
            await observed.db_breaker.call(_database_down)
    spans.clear()
    assert tool_error(await client.call_tool("get_session", {"session_key": "s1"}))["code"] == "unavailable"
    got = finished(spans)
    tool = server_span(got, "tools/call get_session")
    assert tool.attributes is not None and tool.attributes["handoff.error.code"] == "unavailable"
    db_spans = children(got, tool, "db.transaction")
    assert db_spans
    assert all(s.status.status_code is StatusCode.ERROR for s in db_spans)
    assert all(s.attributes is not None and s.attributes["error.type"] == "unavailable" for s in db_spans)


async def _database_down() -> None:
    raise DatabaseUnavailable("the database is unavailable (test)")


async def test_resource_read_span_carries_the_template_not_the_uri(client: Client, spans: InMemorySpanExporter) -> None:
    structured(await client.call_tool("register_session", {"session_key": "s1", "source_agent": "a"}))
    spans.clear()
    await client.read_resource("handoff://sessions/s1/context")
    read = server_span(finished(spans), "resources/read")
    assert read.attributes is not None
    assert read.attributes["handoff.resource"] == "handoff://sessions/{session_key}/context"
    assert read.attributes["handoff.session_key"] == "s1"
    assert read.attributes["handoff.outcome"] == "ok"


async def test_with_tracing_disabled_only_the_sdk_span_remains(client: Client, spans: InMemorySpanExporter) -> None:
    structured(await client.call_tool("register_session", {"session_key": "s1", "source_agent": "a"}))
    Tracing(trace.get_tracer_provider()).disable()  # the SDK keeps its span; our wrappers stop
    assert not tracing_active()
    spans.clear()
    structured(await client.call_tool("get_context", {"session_key": "s1"}))
    names = {s.name for s in finished(spans)}
    assert "tools/call get_context" in names
    assert not {"db.transaction", "cache.get", "cache.set"} & names


async def test_a_job_run_span_holds_its_units_of_work(observed: Container, spans: InMemorySpanExporter) -> None:
    from handoff.observability.tracing import job_span

    with job_span("expire"):
        await observed.sessions.list_sessions(statuses=None, agent=None, cursor=None, limit=5)
    async with observed.engine.connect() as conn:  # a direct query outside a unit of work: not traced
        await conn.execute(sa.text("SELECT 1"))
    got = finished(spans)
    (job,) = [s for s in got if s.name == "job expire"]
    assert job.parent is None
    assert job.attributes is not None and job.attributes["handoff.job"] == "expire"
    assert [s.name for s in children(got, job)] == ["db.transaction"]


def test_no_endpoint_means_no_tracing() -> None:
    assert configure_tracing(otlp_endpoint=None) is None
    assert configure_tracing(otlp_endpoint="") is None


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes, dict[str, str]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body, dict(self.headers)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def otlp_collector() -> Iterator[tuple[str, list[tuple[str, str, bytes, dict[str, str]]]]]:
    received: list[tuple[str, str, bytes, dict[str, str]]] = []
    handler = type("Handler", (_Collector,), {"received": received})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1/traces", received
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_spans_are_exported_over_otlp_http_to_the_configured_endpoint() -> None:
    with otlp_collector() as (endpoint, received):
        provider = build_otlp_provider(
            otlp_endpoint=endpoint, service_name="handoff-test", headers={"x-tenant": "t1"}, export_timeout_seconds=5
        )
        try:
            with provider.get_tracer("test").start_as_current_span("tools/call update_context") as span:
                span.set_attribute("handoff.session_key", "s1")
            assert provider.force_flush(5_000)
        finally:
            provider.shutdown()
    assert received, "the exporter sent nothing"
    path, content_type, body, headers = received[0]
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    assert headers.get("x-tenant") == "t1"
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    (resource_spans,) = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "handoff-test"
    exported = [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert [s.name for s in exported] == ["tools/call update_context"]
    assert {a.key: a.value.string_value for a in exported[0].attributes} == {"handoff.session_key": "s1"}
