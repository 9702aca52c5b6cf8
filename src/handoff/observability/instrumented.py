"""What units of work and the cache report: spans (when tracing is on) and wait metrics.

Units of work call `TransactionMetrics` (the storage's transaction observer) themselves; the cache
is wrapped once by `InstrumentedCache`, which keeps the Cache port's interface.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from handoff.observability.tracing import client_span, mark_error, tracing_active
from handoff.services.ports import Cache, CacheStats

# Our error codes that say "the caller asked for something wrong", not "a dependency failed".
CLIENT_ERROR_CODES = frozenset({"not_found", "already_exists", "invalid_state", "invalid_input", "forbidden"})

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from opentelemetry.trace import Span

    from handoff.observability.metrics import Metrics


class TransactionMetrics:
    """The storage's transaction observer: wait and in-progress gauges, and a `db.transaction` span
    while tracing is on. Units of work call it; nothing wraps them."""

    def __init__(self, metrics: Metrics | None, *, system: str) -> None:
        self._metrics = metrics
        self._system = system

    def begin(self, *, write: bool) -> _TransactionWatch:
        return _TransactionWatch(self._metrics, "write" if write else "read", self._system)


class _TransactionWatch:
    __slots__ = ("_committed", "_metrics", "_mode", "_opened", "_span", "_span_cm", "_started")

    def __init__(self, metrics: Metrics | None, mode: str, system: str) -> None:
        self._metrics = metrics
        self._mode = mode
        self._committed = False
        self._opened = False
        self._span_cm: AbstractContextManager[Span] | None = None
        self._span: Span | None = None
        if tracing_active():
            self._span_cm = client_span("db.transaction", {"db.system.name": system, "handoff.db.mode": mode})
            self._span = self._span_cm.__enter__()
        self._started = time.perf_counter()
        if metrics is not None:
            metrics.db_waiting.labels(mode).inc()

    def opened(self) -> None:
        self._opened = True
        waited = time.perf_counter() - self._started
        if self._metrics is not None:
            self._metrics.db_waiting.labels(self._mode).dec()
            self._metrics.db_wait.labels(self._mode).observe(waited)
            self._metrics.db_in_progress.labels(self._mode).inc()
        if self._span is not None:
            self._span.set_attribute("handoff.db.wait_ms", round(waited * 1000, 3))

    def committed(self) -> None:
        self._committed = True

    def ended(self, exc: BaseException | None) -> None:
        if self._metrics is not None:
            if self._opened:
                self._metrics.db_in_progress.labels(self._mode).dec()
            else:  # never got its connection: it stops waiting now
                self._metrics.db_waiting.labels(self._mode).dec()
                self._metrics.db_wait.labels(self._mode).observe(time.perf_counter() - self._started)
        if self._span_cm is None or self._span is None:
            return
        span, cm = self._span, self._span_cm
        self._span = self._span_cm = None
        span.set_attribute("handoff.db.committed", self._committed)
        if exc is not None:
            error_type = _error_type(exc)
            if error_type in CLIENT_ERROR_CODES:
                # The database answered; the request was refused (no such session, wrong state...).
                span.set_attribute("handoff.error.code", error_type)
            else:
                mark_error(span, error_type)
        cm.__exit__(None, None, None)  # the error is already on the span, by type only


class InstrumentedCache:
    """The Cache port with a `cache.get|set|delete` span per call while tracing is on.

    Keys are not put on spans (they embed session keys and cursors); the key's kind (its first
    segment, e.g. `page` or `handoff`) and, for `get`, whether it hit, are.
    """

    def __init__(self, inner: Cache) -> None:
        self.inner = inner
        self._backend = inner.stats().backend

    async def get(self, key: str) -> bytes | None:
        if not tracing_active():
            return await self.inner.get(key)
        with client_span("cache.get", self._attributes(key)) as span:
            value = await self.inner.get(key)
            span.set_attribute("handoff.cache.hit", value is not None)
            return value

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        if not tracing_active():
            return await self.inner.set(key, value, ttl_seconds)
        with client_span("cache.set", self._attributes(key) | {"handoff.cache.value_bytes": len(value)}):
            await self.inner.set(key, value, ttl_seconds)

    async def delete(self, key: str) -> None:
        if not tracing_active():
            return await self.inner.delete(key)
        with client_span("cache.delete", self._attributes(key)):
            await self.inner.delete(key)

    def stats(self) -> CacheStats:
        return self.inner.stats()

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()

    def _attributes(self, key: str) -> dict[str, Any]:
        return {"handoff.cache.backend": self._backend, "handoff.cache.key_kind": key.split(":", 1)[0][:32]}


def _error_type(exc: BaseException | None) -> str:
    if exc is None:
        return "error"
    code = getattr(exc, "code", None)  # our HandoffError codes: unavailable, conflict, not_found ...
    return code if isinstance(code, str) else type(exc).__qualname__
