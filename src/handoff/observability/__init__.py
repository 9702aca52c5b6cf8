"""Metrics, tracing and the MCP middleware that feeds them (see each module's docstring)."""

from handoff.observability.instrumented import InstrumentedCache, InstrumentedUnitOfWorkFactory
from handoff.observability.metrics import Metrics, metrics_endpoint
from handoff.observability.middleware import ObservabilityMiddleware
from handoff.observability.tracing import Tracing, configure_tracing, enable_tracing, tracing_active

__all__ = [
    "InstrumentedCache",
    "InstrumentedUnitOfWorkFactory",
    "Metrics",
    "ObservabilityMiddleware",
    "Tracing",
    "configure_tracing",
    "enable_tracing",
    "metrics_endpoint",
    "tracing_active",
]
