"""Readiness: is each dependency reachable and the schema current? Bounded by a timeout per probe."""

from __future__ import annotations

import time
from typing import Any, Protocol

import anyio


class DatabaseProbe(Protocol):
    @property
    def backend(self) -> str: ...

    async def ping(self) -> None: ...

    async def schema_revisions(self) -> tuple[str | None, str]: ...


class HealthService:
    def __init__(self, database: DatabaseProbe, timeout_seconds: float = 1.0) -> None:
        self._database = database
        self._timeout = timeout_seconds

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
        status["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return {"ready": bool(status["ok"]), "checks": [status]}
