"""OpenTelemetry tracing: off by default, OTLP over HTTP when an endpoint is configured.

The MCP SDK already opens a SERVER span per inbound message (`mcp.server._otel.OpenTelemetryMiddleware`,
first in every server's middleware list), named `tools/call <tool>` for tool calls and parented on the
caller's W3C trace context from `_meta`. We do not open a second span for the same call: our
middleware (observability/middleware.py) adds our attributes to that span, and the database and cache
wrappers (observability/instrumented.py) open CLIENT spans beneath it.

Both the SDK and we use the global tracer provider, so tracing is switched on process-wide, once:
`configure_tracing(...)` from the CLI, or `enable_tracing(provider)` from a test. Until then (or
when no endpoint is set) there is no exporter, the SDK's spans are no-ops, and our wrappers skip span
creation behind one boolean check.

Spans carry the tool name, the session key, the outcome and our error code; never content, metadata
or driver error messages (those can quote SQL parameters).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode

import handoff
from handoff.errors import CannotStart
from handoff.logs import get_logger

if TYPE_CHECKING:  # the SDK and exporter come with the `otel` extra, loaded only when tracing is on
    from opentelemetry.sdk.trace import TracerProvider

log = get_logger(__name__)

TRACER_NAME = "handoff"
tracer = trace.get_tracer(TRACER_NAME, handoff.__version__)


@dataclass
class _State:
    active: bool = False


_state = _State()


def tracing_active() -> bool:
    """True once a tracer provider has been enabled in this process (and not disabled since)."""
    return _state.active


class Tracing:
    """The enabled tracer provider; `shutdown()` flushes pending spans (call it once, at exit)."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self.provider = provider

    def disable(self) -> None:
        """Stop our wrappers from opening spans (the global provider itself cannot be uninstalled)."""
        _state.active = False

    def shutdown(self) -> None:
        """Blocking: exports what is buffered (bounded by the exporter's timeout). Run it off the loop."""
        self.disable()
        shutdown = getattr(self.provider, "shutdown", None)
        if callable(shutdown):
            shutdown()


def enable_tracing(provider: trace.TracerProvider) -> Tracing:
    """Install `provider` as the process's tracer provider (first one wins) and start making spans.

    OpenTelemetry allows one global provider per process; if another was installed before (for
    example by `opentelemetry-instrument`), that one keeps receiving the spans.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    elif current is not provider:
        log.warning("a tracer provider was already installed; spans go to it", provider=type(current).__name__)
        provider = current
    _state.active = True
    return Tracing(provider)


def configure_tracing(
    *,
    otlp_endpoint: str | None,
    service_name: str = "handoff",
    sample_ratio: float = 1.0,
    headers: Mapping[str, str] | None = None,
    export_timeout_seconds: float = 10.0,
) -> Tracing | None:
    """Export spans over OTLP/HTTP to `otlp_endpoint` from now on; None (and nothing installed) when unset."""
    if not otlp_endpoint:
        return None
    provider = build_otlp_provider(
        otlp_endpoint=otlp_endpoint,
        service_name=service_name,
        sample_ratio=sample_ratio,
        headers=headers,
        export_timeout_seconds=export_timeout_seconds,
    )
    log.info("tracing enabled", otlp_endpoint=otlp_endpoint, sample_ratio=sample_ratio)
    return enable_tracing(provider)


def build_otlp_provider(
    *,
    otlp_endpoint: str,
    service_name: str = "handoff",
    sample_ratio: float = 1.0,
    headers: Mapping[str, str] | None = None,
    export_timeout_seconds: float = 10.0,
) -> TracerProvider:
    """A provider batching spans to `otlp_endpoint` (the full traces URL, e.g. `http://collector:4318/v1/traces`).

    Sampling follows the caller's decision when a trace context arrives with the request, and keeps
    `sample_ratio` of the traces that start here.
    """
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ModuleNotFoundError as error:
        raise CannotStart(
            f"HANDOFF_TRACING__OTLP_ENDPOINT needs {error.name!r}, which is not installed: pip install 'handoff[otel]'"
        ) from error

    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name, "service.version": handoff.__version__}),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    exporter = OTLPSpanExporter(endpoint=otlp_endpoint, headers=dict(headers or {}), timeout=export_timeout_seconds)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def parse_headers(raw: str | None) -> dict[str, str]:
    """`key=value,key2=value2` (the OTEL_EXPORTER_OTLP_HEADERS form) into a dict."""
    headers: dict[str, str] = {}
    for part in (raw or "").split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            headers[key.strip()] = value.strip()
    return headers


@contextlib.contextmanager
def client_span(name: str, attributes: Mapping[str, Any]) -> Iterator[Span]:
    """A CLIENT span around a dependency call; a failure is recorded by type only, never its message."""
    with tracer.start_as_current_span(
        name,
        kind=SpanKind.CLIENT,
        attributes=dict(attributes),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            mark_error(span, type(exc).__qualname__)
            raise


@contextlib.contextmanager
def job_span(job: str) -> Iterator[None]:
    """A root span around one lifecycle job run, so its units of work nest under it (no-op when off)."""
    if not _state.active:
        yield
        return
    with tracer.start_as_current_span(f"job {job}", attributes={"handoff.job": job}):
        yield


def mark_error(span: Span, error_type: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(StatusCode.ERROR, error_type)


def add_trace_context(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: `trace_id`/`span_id` on log lines written inside a recorded span."""
    if not _state.active:
        return event_dict
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict
