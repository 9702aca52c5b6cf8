"""Fixtures: a metrics registry per test, an observed container and client, captured spans, a scraper."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import pytest
from mcp.client import Client
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handoff.config import Settings
from handoff.container import Container
from handoff.mcp.server import build_server
from handoff.observability.metrics import Metrics, metrics_endpoint
from handoff.observability.tracing import enable_tracing


class _Switch(Sampler):
    """Records spans only while a test captures them: the provider is process-wide and cannot be removed."""

    def __init__(self) -> None:
        self.on = False

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE if self.on else Decision.DROP, attributes)

    def get_description(self) -> str:
        return "on while a test captures spans"


_installed: tuple[TracerProvider, InMemorySpanExporter, _Switch] | None = None


def _provider() -> tuple[TracerProvider, InMemorySpanExporter, _Switch]:
    global _installed
    if _installed is None:
        switch = _Switch()
        provider = TracerProvider(sampler=switch)
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        _installed = (provider, exporter, switch)
    return _installed


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Finished spans of this test (tracing enabled for its duration, off again after it)."""
    provider, exporter, switch = _provider()
    tracing = enable_tracing(provider)
    exporter.clear()
    switch.on = True
    try:
        yield exporter
    finally:
        switch.on = False
        tracing.disable()
        exporter.clear()


@pytest.fixture
async def observed(settings: Settings) -> AsyncIterator[Container]:
    """The real container, as `handoff serve` builds it (metrics and instrumented adapters included)."""
    settings.metrics.scrape_timeout_seconds = 1.0
    settings.metrics.inventory_max_age_seconds = 0.0  # every scrape reads the database afresh
    async with Container.build(settings) as container:
        yield container


@pytest.fixture
def metrics(observed: Container) -> Metrics:
    return observed.metrics


@pytest.fixture
async def client(observed: Container) -> AsyncIterator[Client]:
    async with Client(build_server(observed)) as connected:
        yield connected


def metrics_app(metrics: Metrics) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return await metrics_endpoint(request, metrics)

    return Starlette(routes=[Route("/metrics", endpoint, methods=["GET"])])


class Scrape:
    """One parsed exposition: `value(name, **labels)` is the sample's value, None when absent."""

    def __init__(self, text: str, content_type: str) -> None:
        self.text = text
        self.content_type = content_type
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, sample_name: str, **labels: str) -> float | None:
        for family in self.families.values():
            for sample in family.samples:
                if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return None

    def samples(self, sample_name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {
            tuple(sorted(s.labels.items())): float(s.value)
            for f in self.families.values()
            for s in f.samples
            if s.name == sample_name
        }


async def scrape(metrics: Metrics) -> Scrape:
    transport = httpx.ASGITransport(app=metrics_app(metrics))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    return Scrape(response.text, response.headers["content-type"])


def finished(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return list(exporter.get_finished_spans())
