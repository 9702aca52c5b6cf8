"""Prometheus metrics: one registry per container, recorded as things happen or read at scrape time.

Three kinds of numbers end up on `/metrics`:

- events recorded as they happen (tool calls, resource reads, appended bytes, requested handoffs, job
  runs, units of work waiting for the database): counters, histograms and gauges owned by `Metrics`;
- in-process state read synchronously at scrape time (connection pools, cache counters, circuit
  breakers) by `_ProcessStateCollector`, which only calls cheap accessors;
- database-wide counts (sessions by state, handoffs by type and status) and readiness, which need
  awaiting: the endpoint first runs `Metrics.refresh()` (each source bounded by a timeout) and the
  collector then renders the snapshot it left. A source that fails or times out is reported as
  `handoff_scrape_source_up{source=...} 0` and its gauges are left out rather than shown stale.

The registry is never the process-global one: tests build several containers in one process.
Counts read from the database are the same on every replica: aggregate them with `max`, not `sum`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from starlette.requests import Request
from starlette.responses import Response

from handoff.domain.models import HandoffStatus, HandoffType, SessionStatus
from handoff.logs import get_logger
from handoff.resilience import BreakerState, BreakerStats
from handoff.services.ports import Cache

log = get_logger(__name__)

K = TypeVar("K")

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # "text/plain; version=0.0.4; charset=utf-8"

# Request latencies: from a cached read (~1 ms) to a long analyze_codebase (tens of seconds).
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0)
JOB_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)

BREAKER_STATE_VALUE = {BreakerState.CLOSED: 0.0, BreakerState.HALF_OPEN: 1.0, BreakerState.OPEN: 2.0}
_BREAKER_STATE_BY_NAME = {state.value: value for state, value in BREAKER_STATE_VALUE.items()}

SessionCounts = Callable[[], Awaitable[Mapping[str, int]]]
"""`async () -> {status: count}` for every session status present in the database."""
HandoffCounts = Callable[[], Awaitable[Mapping[tuple[str, str], int]]]
"""`async () -> {(handoff_type, status): count}` for every combination present in the database."""
ReadinessCheck = Callable[[], Awaitable[Mapping[str, Any]]]
"""`HealthService.check_ready`: `{"ready": bool, "checks": [{"name", "ok", "latency_ms", ...}]}`."""


@runtime_checkable
class Pool(Protocol):
    """What we read from a SQLAlchemy `QueuePool` (`engine.pool`, `async_engine.pool`)."""

    def size(self) -> int: ...

    def checkedin(self) -> int: ...

    def checkedout(self) -> int: ...

    def overflow(self) -> int: ...


class JobReportLike(Protocol):
    """What `observe_job` reads from a lifecycle job's report (services/lifecycle.py JobReport)."""

    @property
    def examined(self) -> int: ...

    @property
    def changed(self) -> int: ...

    @property
    def errors(self) -> int: ...

    @property
    def duration_ms(self) -> int: ...


class BreakerLike(Protocol):
    def stats(self) -> BreakerStats: ...


@dataclass
class _Snapshot:
    """What the last `refresh()` read from the awaitable sources (None: not read, or failed)."""

    sessions: Mapping[str, int] | None = None
    handoffs: Mapping[tuple[str, str], int] | None = None
    readiness: Mapping[str, Any] | None = None
    source_up: dict[str, bool] = field(default_factory=dict)
    inventory_read_at: float | None = None


class Metrics:
    """Every metric the server exports, in a registry of its own."""

    def __init__(
        self,
        *,
        scrape_timeout_seconds: float = 2.0,
        inventory_max_age_seconds: float = 10.0,
        process_metrics: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry()
        self._scrape_timeout = scrape_timeout_seconds
        self._inventory_max_age = inventory_max_age_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        r = self.registry

        self.tool_calls = Counter(
            "handoff_tool_calls",
            "Tool calls by tool and outcome (ok, error, cancelled).",
            ["tool", "outcome"],
            registry=r,
        )
        self.tool_errors = Counter(
            "handoff_tool_errors", "Tool calls answered with an error, by error code.", ["tool", "code"], registry=r
        )
        self.tool_duration = Histogram(
            "handoff_tool_duration_seconds", "Tool call latency.", ["tool"], buckets=REQUEST_BUCKETS, registry=r
        )
        self.resource_reads = Counter(
            "handoff_resource_reads", "Resource reads by URI template and outcome.", ["resource", "outcome"], registry=r
        )
        self.resource_errors = Counter(
            "handoff_resource_errors",
            "Resource reads answered with an error, by code.",
            ["resource", "code"],
            registry=r,
        )
        self.resource_duration = Histogram(
            "handoff_resource_duration_seconds",
            "Resource read latency.",
            ["resource"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.context_bytes = Counter(
            "handoff_context_appended_bytes",
            "Bytes of context content appended (idempotent replays not counted).",
            ["context_type"],
            registry=r,
        )
        self.context_entries = Counter(
            "handoff_context_appended_entries", "Context entries appended.", ["context_type"], registry=r
        )
        self.redactions = Counter(
            "handoff_secrets_redacted", "Secrets replaced before storage, by kind.", ["kind"], registry=r
        )
        self.handoffs_requested = Counter(
            "handoff_handoffs_requested", "Handoffs requested, by handoff type.", ["handoff_type"], registry=r
        )
        self.db_waiting = Gauge(
            "handoff_db_units_waiting",
            "Units of work waiting to start: for a pooled connection, or for SQLite's write lock.",
            ["mode"],
            registry=r,
        )
        self.db_in_progress = Gauge(
            "handoff_db_units_in_progress", "Units of work holding a connection.", ["mode"], registry=r
        )
        self.db_wait = Histogram(
            "handoff_db_unit_wait_seconds",
            "Time from asking for a unit of work to holding its transaction.",
            ["mode"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.job_runs = Counter(
            "handoff_job_runs",
            "Job runs by outcome (ok, failed, skipped = another runner held it).",
            ["job", "outcome"],
            registry=r,
        )
        self.job_duration = Histogram(
            "handoff_job_duration_seconds", "Duration of a job run.", ["job"], buckets=JOB_BUCKETS, registry=r
        )
        self.job_examined = Counter("handoff_job_examined", "Items a job looked at.", ["job"], registry=r)
        self.job_changed = Counter("handoff_job_changed", "Items a job changed.", ["job"], registry=r)
        self.job_item_errors = Counter("handoff_job_errors", "Items a job failed on.", ["job"], registry=r)
        self.job_last_success = Gauge(
            "handoff_job_last_success_timestamp_seconds",
            "Unix time of the job's last successful run.",
            ["job"],
            registry=r,
        )
        self.job_last_run = Gauge(
            "handoff_job_last_run_timestamp_seconds", "Unix time of the job's last run.", ["job"], registry=r
        )

        self._snapshot = _Snapshot()
        self._sessions_source: SessionCounts | None = None
        self._handoffs_source: HandoffCounts | None = None
        self._readiness_source: ReadinessCheck | None = None
        self._state = _ProcessStateCollector(self)
        r.register(self._state)
        if process_metrics:
            ProcessCollector(registry=r)

    # -- recording (called on the request path: cheap, never raises for unexpected labels) ----

    def observe_tool_call(self, tool: str, outcome: str, seconds: float, error_code: str | None = None) -> None:
        self.tool_calls.labels(tool, outcome).inc()
        self.tool_duration.labels(tool).observe(seconds)
        if error_code is not None:
            self.tool_errors.labels(tool, error_code).inc()

    def observe_resource_read(self, resource: str, outcome: str, seconds: float, error_code: str | None = None) -> None:
        self.resource_reads.labels(resource, outcome).inc()
        self.resource_duration.labels(resource).observe(seconds)
        if error_code is not None:
            self.resource_errors.labels(resource, error_code).inc()

    def record_context_append(self, context_type: str, content_bytes: int) -> None:
        self.context_entries.labels(context_type).inc()
        self.context_bytes.labels(context_type).inc(max(0, content_bytes))

    def record_redactions(self, counts: Mapping[str, int]) -> None:
        for kind, n in counts.items():
            self.redactions.labels(kind).inc(n)

    def record_handoff_requested(self, handoff_type: str) -> None:
        self.handoffs_requested.labels(handoff_type).inc()

    def record_job_run(
        self, name: str, examined: int, changed: int, errors: int, seconds: float, ok: bool, *, at: float | None = None
    ) -> None:
        """One finished run of a lifecycle job (`ok` False: the run itself failed, not just some items)."""
        self.job_runs.labels(name, "ok" if ok else "failed").inc()
        self.job_duration.labels(name).observe(max(0.0, seconds))
        self.job_examined.labels(name).inc(max(0, examined))
        self.job_changed.labels(name).inc(max(0, changed))
        self.job_item_errors.labels(name).inc(max(0, errors))
        now = self._wall_clock() if at is None else at
        self.job_last_run.labels(name).set(now)
        if ok:
            self.job_last_success.labels(name).set(now)

    def observe_job(self, report: JobReportLike | None, job: str, ok: bool) -> None:
        """`JobRunner`'s observer: a finished run (with its report) or a run that failed before reporting."""
        if report is not None:
            seconds = report.duration_ms / 1000
            self.record_job_run(job, report.examined, report.changed, report.errors, seconds, ok)
            return
        self.job_runs.labels(job, "ok" if ok else "failed").inc()
        self.job_last_run.labels(job).set(self._wall_clock())

    def record_job_skipped(self, name: str) -> None:
        """The job was due but another runner (replica) held its lock."""
        self.job_runs.labels(name, "skipped").inc()

    # -- scrape-time sources -------------------------------------------------------------------

    def watch_pool(self, name: str, pool: object, *, capacity: int | None = None) -> None:
        """Report a connection pool's use; `capacity` = pool_size + max_overflow (None: unbounded).

        Pools without counters (NullPool, StaticPool) are accepted and left out of the scrape.
        """
        if isinstance(pool, Pool):
            self._state.pools[name] = (pool, capacity)

    def watch_cache(self, cache: Cache) -> None:
        """Report `cache.stats()` (and its circuit breaker state, when the backend has one)."""
        self._state.cache = cache

    def watch_breaker(self, breaker: BreakerLike) -> None:
        self._state.breakers.append(breaker)

    def watch_inventory(self, sessions_by_status: SessionCounts, handoffs_by_type_status: HandoffCounts) -> None:
        self._sessions_source = sessions_by_status
        self._handoffs_source = handoffs_by_type_status

    def watch_readiness(self, check_ready: ReadinessCheck) -> None:
        self._readiness_source = check_ready

    def observe_readiness(self, report: Mapping[str, Any]) -> None:
        """Remember a readiness report (from a scrape or from /readyz) for `handoff_ready`."""
        self._snapshot.readiness = report

    async def refresh(self) -> None:
        """Await the database-backed sources, each within the scrape timeout; never raises."""
        async with anyio.create_task_group() as tg:
            if self._readiness_source is not None:
                tg.start_soon(self._refresh_readiness, self._readiness_source)
            if self._sessions_source is not None and self._handoffs_source is not None:
                tg.start_soon(self._refresh_inventory, self._sessions_source, self._handoffs_source)

    async def _refresh_readiness(self, source: ReadinessCheck) -> None:
        try:
            with anyio.fail_after(self._scrape_timeout):
                report = await source()
        except Exception as exc:  # a scrape reports what it could read; it never fails the endpoint
            log.warning("metrics source failed", source="readiness", error=type(exc).__name__)
            self._snapshot.readiness = {"ready": False, "checks": []}
            self._snapshot.source_up["readiness"] = False
            return
        self._snapshot.readiness = report
        self._snapshot.source_up["readiness"] = True

    async def _refresh_inventory(self, sessions: SessionCounts, handoffs: HandoffCounts) -> None:
        read_at = self._snapshot.inventory_read_at
        if read_at is not None and self._clock() - read_at < self._inventory_max_age:
            return
        try:
            with anyio.fail_after(self._scrape_timeout):
                by_status = dict(await sessions())
                by_type_status = dict(await handoffs())
        except Exception as exc:
            log.warning("metrics source failed", source="inventory", error=type(exc).__name__)
            self._snapshot.sessions = self._snapshot.handoffs = None
            self._snapshot.inventory_read_at = None
            self._snapshot.source_up["inventory"] = False
            return
        self._snapshot.sessions = by_status
        self._snapshot.handoffs = by_type_status
        self._snapshot.inventory_read_at = self._clock()
        self._snapshot.source_up["inventory"] = True

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def metrics_endpoint(request: Request, metrics: Metrics) -> Response:
    """`GET /metrics`: refresh the awaitable sources (bounded), then the text exposition format 0.0.4."""
    await metrics.refresh()
    return Response(metrics.render(), media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


class _ProcessStateCollector:
    """Reads pools, cache and breakers at scrape time, and renders the last awaited snapshot."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.pools: dict[str, tuple[Pool, int | None]] = {}
        self.cache: Cache | None = None
        self.breakers: list[BreakerLike] = []

    def describe(self) -> Iterable[Metric]:
        return ()  # names vary with what is watched; nothing to check for duplicates

    def collect(self) -> Iterator[Metric]:
        yield from self._pools()
        yield from self._cache()
        yield from self._breakers()
        yield from self._snapshot()

    def _pools(self) -> Iterator[Metric]:
        if not self.pools:
            return
        checked_out = GaugeMetricFamily("handoff_db_pool_checked_out", "Pooled connections in use.", labels=["pool"])
        idle = GaugeMetricFamily("handoff_db_pool_idle", "Pooled connections idle in the pool.", labels=["pool"])
        size = GaugeMetricFamily("handoff_db_pool_size", "Configured pool size.", labels=["pool"])
        overflow = GaugeMetricFamily(
            "handoff_db_pool_overflow",
            "Connections beyond the pool size (negative: pool not yet full).",
            labels=["pool"],
        )
        capacity = GaugeMetricFamily(
            "handoff_db_pool_capacity", "pool_size + max_overflow (+Inf: unbounded).", labels=["pool"]
        )
        for name, (pool, cap) in self.pools.items():
            try:
                values = (pool.checkedout(), pool.checkedin(), pool.size(), pool.overflow())
            except Exception:  # a pool kind without these counters (NullPool, StaticPool)
                continue
            checked_out.add_metric([name], values[0])
            idle.add_metric([name], values[1])
            size.add_metric([name], values[2])
            overflow.add_metric([name], values[3])
            capacity.add_metric([name], math.inf if cap is None else cap)
        yield from (checked_out, idle, size, overflow, capacity)

    def _cache(self) -> Iterator[Metric]:
        if self.cache is None:
            return
        stats = self.cache.stats()
        labels = ["backend"]
        for name, help_text, value in (
            ("handoff_cache_hits", "Cache lookups that found a value.", stats.hits),
            ("handoff_cache_misses", "Cache lookups that found nothing (failures included).", stats.misses),
            ("handoff_cache_sets", "Values stored.", stats.sets),
            ("handoff_cache_deletes", "Keys deleted.", stats.deletes),
            ("handoff_cache_errors", "Backend failures absorbed (served from the database).", stats.errors),
            ("handoff_cache_short_circuits", "Calls skipped while the cache's circuit was open.", stats.short_circuits),
            ("handoff_cache_evictions", "Entries evicted to stay within bounds.", stats.evictions),
        ):
            family = CounterMetricFamily(name, help_text, labels=labels)
            family.add_metric([stats.backend], value)
            yield family
        if stats.entries is not None:
            yield _gauge("handoff_cache_entries", "Entries held.", labels, [stats.backend], stats.entries)
        if stats.bytes is not None:
            yield _gauge("handoff_cache_bytes", "Bytes held.", labels, [stats.backend], stats.bytes)

    def _breakers(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "handoff_circuit_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.", labels=["breaker"]
        )
        opened = CounterMetricFamily("handoff_circuit_breaker_opened", "Times the circuit opened.", labels=["breaker"])
        rejected = CounterMetricFamily(
            "handoff_circuit_breaker_rejections", "Calls failed fast by an open circuit.", labels=["breaker"]
        )
        failures = CounterMetricFamily(
            "handoff_circuit_breaker_failures", "Failures counted against the dependency.", labels=["breaker"]
        )
        for breaker in self.breakers:
            s = breaker.stats()
            state.add_metric([s.name], BREAKER_STATE_VALUE[s.state])
            opened.add_metric([s.name], s.times_opened)
            rejected.add_metric([s.name], s.rejections)
            failures.add_metric([s.name], s.failures)
        # Backends that keep their own breaker (Redis) report its state through their stats.
        if self.cache is not None:
            stats = self.cache.stats()
            if stats.circuit is not None and stats.circuit in _BREAKER_STATE_BY_NAME:
                state.add_metric([stats.backend], _BREAKER_STATE_BY_NAME[stats.circuit])
        yield from (state, opened, rejected, failures)

    def _snapshot(self) -> Iterator[Metric]:
        snap = self._metrics._snapshot
        if snap.readiness is not None:
            yield _gauge("handoff_ready", "1 when the server is ready to serve (see /readyz).", [], [], _ready(snap))
            up = GaugeMetricFamily(
                "handoff_dependency_up", "1 when the dependency answered its readiness probe.", labels=["dependency"]
            )
            latency = GaugeMetricFamily(
                "handoff_dependency_latency_seconds", "Latency of the last readiness probe.", labels=["dependency"]
            )
            for check in snap.readiness.get("checks", ()):
                name = str(check.get("name", "unknown"))
                up.add_metric([name], 1.0 if check.get("ok") else 0.0)
                if isinstance(check.get("latency_ms"), int | float):
                    latency.add_metric([name], float(check["latency_ms"]) / 1000)
            yield from (up, latency)
        if snap.source_up:
            up = GaugeMetricFamily(
                "handoff_scrape_source_up", "1 when the source answered within the scrape timeout.", labels=["source"]
            )
            for source, ok in sorted(snap.source_up.items()):
                up.add_metric([source], 1.0 if ok else 0.0)
            yield up
        if snap.sessions is not None:
            sessions = GaugeMetricFamily("handoff_sessions", "Sessions by lifecycle state.", labels=["status"])
            for status in _with_zeros(snap.sessions, [s.value for s in SessionStatus]):
                sessions.add_metric([status], snap.sessions.get(status, 0))
            yield sessions
        if snap.handoffs is not None:
            handoffs = GaugeMetricFamily(
                "handoff_handoffs", "Handoffs by type and status.", labels=["handoff_type", "status"]
            )
            every = [(t.value, s.value) for t in HandoffType for s in HandoffStatus]
            for key in _with_zeros(snap.handoffs, every):
                handoffs.add_metric(list(key), snap.handoffs.get(key, 0))
            yield handoffs


def _ready(snap: _Snapshot) -> float:
    return 1.0 if snap.readiness is not None and snap.readiness.get("ready") else 0.0


def _with_zeros(present: Mapping[K, int], known: list[K]) -> list[K]:
    """Every known label value (so absent states read 0, not "no data"), then any unknown ones."""
    return known + [k for k in present if k not in known]


def _gauge(name: str, help_text: str, labels: list[str], values: list[str], value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=labels)
    family.add_metric(values, value)
    return family
