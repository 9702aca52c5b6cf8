"""Units of work and caches that report what they do: spans (when tracing is on) and wait metrics.

Both are thin decorators over the ports services already use, so the container wraps what it built
and no service changes:

    uow = InstrumentedUnitOfWorkFactory(GuardedUnitOfWorkFactory(...), metrics=metrics, system="sqlite")
    cache = InstrumentedCache(build_cache(...))
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from handoff.observability.tracing import client_span, mark_error, tracing_active
from handoff.services.ports import Cache, CacheStats, UnitOfWork, UnitOfWorkFactory

# Our error codes that say "the caller asked for something wrong", not "a dependency failed".
CLIENT_ERROR_CODES = frozenset({"not_found", "already_exists", "invalid_state", "invalid_input", "forbidden"})

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from opentelemetry.trace import Span

    from handoff.observability.metrics import Metrics


class InstrumentedUnitOfWork:
    """One unit of work inside a `db.transaction` span, counted while it waits and while it runs.

    Repositories (and anything else the inner unit exposes) are read from the inner unit, so new
    repositories need no change here.
    """

    def __init__(self, inner: UnitOfWork, *, write: bool, metrics: Metrics | None, system: str) -> None:
        self._inner = inner
        self._mode = "write" if write else "read"
        self._metrics = metrics
        self._system = system
        self._span_cm: AbstractContextManager[Span] | None = None
        self._span: Span | None = None
        self._committed = False

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not set on this object: sessions, entries, handoffs, events, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    async def __aenter__(self) -> Self:
        if tracing_active():
            self._span_cm = client_span(
                "db.transaction", {"db.system.name": self._system, "handoff.db.mode": self._mode}
            )
            self._span = self._span_cm.__enter__()
        metrics = self._metrics
        started = time.perf_counter()
        if metrics is not None:
            metrics.db_waiting.labels(self._mode).inc()
        try:
            await self._inner.__aenter__()
        except BaseException as exc:
            self._finish_span(type(exc), exc, exc.__traceback__)
            raise
        finally:
            if metrics is not None:
                waited = time.perf_counter() - started
                metrics.db_waiting.labels(self._mode).dec()
                metrics.db_wait.labels(self._mode).observe(waited)
        if metrics is not None:
            metrics.db_in_progress.labels(self._mode).inc()
        if self._span is not None:
            self._span.set_attribute("handoff.db.wait_ms", round((time.perf_counter() - started) * 1000, 3))
        return self

    async def commit(self) -> None:
        await self._inner.commit()
        self._committed = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._inner.__aexit__(exc_type, exc, tb)
        except BaseException as translated:
            self._finish_span(type(translated), translated, translated.__traceback__)
            raise
        finally:
            if self._metrics is not None:
                self._metrics.db_in_progress.labels(self._mode).dec()
        self._finish_span(exc_type, exc, tb)

    def _finish_span(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._span_cm is None or self._span is None:
            return
        span, cm = self._span, self._span_cm
        self._span = self._span_cm = None
        span.set_attribute("handoff.db.committed", self._committed)
        if exc_type is not None:
            error_type = _error_type(exc)
            if error_type in CLIENT_ERROR_CODES:
                # The database answered; the request was refused (no such session, wrong state...).
                span.set_attribute("handoff.error.code", error_type)
            else:
                mark_error(span, error_type)
        cm.__exit__(None, None, None)  # the error is already on the span, by type only


class InstrumentedUnitOfWorkFactory:
    def __init__(self, inner: UnitOfWorkFactory, *, metrics: Metrics | None = None, system: str = "sqlite") -> None:
        self._inner = inner
        self._metrics = metrics
        self._system = system

    def __call__(self, *, write: bool) -> InstrumentedUnitOfWork:
        return InstrumentedUnitOfWork(self._inner(write=write), write=write, metrics=self._metrics, system=self._system)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)  # e.g. GuardedUnitOfWorkFactory.breaker


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
