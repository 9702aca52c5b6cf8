"""Runs the lifecycle jobs on their intervals, one runner per job across all replicas."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from handoff.config import LifecycleSettings, StreamSettings
from handoff.errors import HandoffError
from handoff.logs import get_logger
from handoff.observability.tracing import job_span
from handoff.services.lifecycle import JobReport, LifecycleService
from handoff.services.ports import JobLock

log = get_logger(__name__)

JobObserver = Callable[[JobReport | None, str, bool], None]


class JobRunner:
    def __init__(
        self,
        lifecycle: LifecycleService,
        lock: JobLock,
        settings: LifecycleSettings,
        observer: JobObserver | None = None,
        on_skipped: Callable[[str], None] | None = None,
        streams: StreamSettings | None = None,
    ) -> None:
        self._lifecycle = lifecycle
        self._lock = lock
        self._settings = settings
        self._observer = observer
        self._on_skipped = on_skipped
        self.intervals = {
            "mark_dormant": settings.mark_dormant_interval_seconds,
            "expire": settings.expire_interval_seconds,
            "archive": settings.archive_interval_seconds,
            "purge": settings.purge_interval_seconds,
            "expire_handoffs": settings.expire_handoffs_interval_seconds,
            "merge_search": settings.merge_search_interval_seconds,
            "expire_stream_events": (streams or StreamSettings()).expire_interval_seconds,
        }

    async def run_once(self, job: str) -> JobReport | None:
        """Run `job` now if no other replica is running it; None when another holder has it."""
        async with self._lock.hold(job) as acquired:
            if not acquired:
                log.info("job skipped: another replica holds it", job=job)
                if self._on_skipped is not None:
                    self._on_skipped(job)
                return None
            try:
                with job_span(job):
                    report = await self._lifecycle.run(job)
            except HandoffError as error:  # e.g. the database is down: try again next interval
                log.warning("job failed", job=job, code=error.code, reason=error.message)
                self._notify(None, job, False)
                return None
            self._notify(report, job, report.errors == 0)
            return report

    async def run_forever(self) -> None:
        """Repair once at start, then every job on its interval until cancelled."""
        await self.run_once("repair")
        async with anyio.create_task_group() as tg:
            for job, interval in self.intervals.items():
                tg.start_soon(self._loop, job, interval)

    async def _loop(self, job: str, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            try:
                await self.run_once(job)
            except Exception:  # a job must never take the server down with it
                log.exception("job crashed", job=job)
                self._notify(None, job, False)

    def _notify(self, report: JobReport | None, job: str, ok: bool) -> None:
        if self._observer is not None:
            self._observer(report, job, ok)
