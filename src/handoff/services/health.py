"""Readiness: is each dependency reachable and the schema current? Bounded by a timeout per probe."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import anyio

from handoff.errors import Unavailable
from handoff.services.ports import Cache


class DatabaseProbe(Protocol):
    @property
    def backend(self) -> str: ...

    async def ping(self) -> None: ...

    async def schema_revisions(self) -> tuple[str | None, str]: ...


class HealthService:
    def __init__(
        self,
        database: DatabaseProbe,
        cache: Cache | None = None,
        timeout_seconds: float = 1.0,
        breaker_open: Callable[[], bool] | None = None,
    ) -> None:
        self._database = database
        self._cache = cache
        self._timeout = timeout_seconds
        # A probe that reaches the database is not enough: while the circuit is open, requests
        # fail fast whatever the probe says, so the replica is not ready.
        self._breaker_open = breaker_open or (lambda: False)

    async def check_ready(self) -> dict[str, Any]:
        started = time.perf_counter()
        status: dict[str, Any] = {"name": "database", "backend": self._database.backend}
        try:
            with anyio.fail_after(self._timeout):
                await self._database.ping()
                current, head = await self._database.schema_revisions()
            status["ok"] = current == head
            status["schema"] = {"current": current, "head": head}
            if current != head:
                status["error"] = "schema is not current; run `handoff migrate`"
        except TimeoutError:
            status |= {"ok": False, "error": f"no answer within {self._timeout}s"}
        except Exception as exc:  # a probe reports, it never raises
            status |= {"ok": False, "error": type(exc).__name__}
        if status["ok"] and self._breaker_open():
            status |= {"ok": False, "error": "circuit open after repeated database failures; requests fail fast"}
        status["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        checks = [status]
        if self._cache is not None:
            checks.append(await self._check_cache(self._cache))
        # The cache is never a source of truth: without it we are slower, not wrong, so still ready.
        return {"ready": bool(status["ok"]), "checks": checks}

    async def _check_cache(self, cache: Cache) -> dict[str, Any]:
        started = time.perf_counter()
        stats = cache.stats()
        status: dict[str, Any] = {"name": "cache", "backend": stats.backend, "required": False}
        try:
            with anyio.fail_after(self._timeout):
                await cache.ping()
            status["ok"] = True
        except TimeoutError:
            status |= {"ok": False, "error": f"no answer within {self._timeout}s"}
        except Unavailable as exc:
            status |= {"ok": False, "error": exc.message}
        status["hit_ratio"] = round(stats.hit_ratio, 4)
        status["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return status
