"""Running an analysis in separate, resource-capped worker processes, and reading their events.

Why processes and not threads: tree-sitter and its grammars are C code, and a grammar bug on
hostile input can crash or balloon the process that runs it. Here that process is a worker with
its own address-space and CPU limits and a hard deadline after which it is killed; the server only
reads JSON lines. Workers are kept warm between calls (`pool.py`), so a small call costs a few
milliseconds, not an interpreter start.

A call goes to one worker, which plans it (confinement, directory walks). When the plan is large
and another worker is idle, the planner keeps a share and names the others' shares in its plan;
they go to the idle workers, and the files come back on several streams, each event tagged with
its plan index. The server merges them in plan order and builds the cross-file view. Every worker
streams one event per file, so a crash or a kill still returns every file finished before it.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio

from handoff.analysis.consolidate import finish
from handoff.analysis.pool import EventTooLarge, WorkerPool, WorkerProcess
from handoff.analysis.reasons import Reason, error
from handoff.errors import Forbidden, Unavailable
from handoff.logs import get_logger

log = get_logger(__name__)

MIB = 1024 * 1024
INLINE_CONSOLIDATION_FILES = 8  # fewer take well under a millisecond: not worth a thread hop

Progress = Callable[[int, int, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AnalyzerLimits:
    max_file_bytes: int = 1 * MIB
    max_files: int = 500
    max_total_bytes: int = 32 * MIB
    max_seconds: float = 30.0
    parse_seconds: float = 5.0
    memory_bytes: int = 1024 * MIB  # per worker process
    max_concurrent: int = 2  # worker processes, kept warm
    grace_seconds: float = 10.0  # worker start-up and hand-over on top of max_seconds


class SubprocessAnalyzer:
    """The analyzer port's adapter: confined, limited, out-of-process analysis."""

    def __init__(
        self,
        roots: Sequence[Path],
        limits: AnalyzerLimits | None = None,
        *,
        command_prefix: Sequence[str] = (),
    ) -> None:
        # No roots configured: the working directory, unless that is the filesystem root (a service
        # or desktop client started without one), which would open every file on the machine.
        cwd = Path.cwd()
        self.roots = [Path(r) for r in roots] or ([] if cwd == Path(cwd.anchor) else [cwd])
        self.limits = limits or AnalyzerLimits()
        # e.g. ("setpriv", "--reuid=analysis", ...) to run workers as another user.
        self.command = [*command_prefix, sys.executable, "-m", "handoff.analysis.worker"]
        self._pool = WorkerPool(self.command, self.limits.max_concurrent)

    @property
    def max_files(self) -> int:
        return self.limits.max_files

    @property
    def worker_pids(self) -> list[int]:
        """The worker processes alive now (started on first use)."""
        return list(self._pool.jobs_by_pid)

    @property
    def worker_jobs(self) -> dict[int, int]:
        """Jobs finished by each live worker (a call is one job, or one per worker it was shared by)."""
        return self._pool.jobs_by_pid

    async def analyze(
        self, paths: Sequence[str], analysis_type: str, progress: Progress | None = None
    ) -> dict[str, Any]:
        if not self.roots:
            raise Forbidden(
                "code analysis has no roots: the server runs from / and HANDOFF_ANALYSIS_ROOTS is not set; "
                "set it to the directories agents may analyse",
                {"setting": "HANDOFF_ANALYSIS_ROOTS"},
            )
        request = {
            "op": "analyse",
            "roots": [str(r) for r in self.roots],
            "paths": list(paths),
            "analysis_type": analysis_type,
            "limits": asdict(self.limits),
        }
        call = _Call(self._pool, self.limits, request, progress)
        lead_was_warm = await call.run()
        if call.planned is None and lead_was_warm and not call.timed_out:
            # A warm worker can die while idle (killed from outside); that is no reason to fail.
            call = _Call(self._pool, self.limits, request, progress)
            await call.run()
        if call.planned is None:
            log.error("analysis worker failed before planning", **call.diagnosis())
            raise Unavailable("the code analysis worker could not run; the server logged why")
        return await call.result()

    async def start(self) -> None:
        """Start the workers ahead of the first call (the server's start-up), and wait for them."""
        try:
            await self._pool.start()
        except RuntimeError:
            raise Unavailable("the code analysis workers are stopped") from None
        except OSError as error:
            log.error("could not start an analysis worker", error=str(error))
            raise Unavailable("the code analysis worker could not run; the server logged why") from None

    async def aclose(self) -> None:
        """Stop the workers (the server's shutdown)."""
        await self._pool.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


@dataclass(slots=True)
class _Job:
    """One worker's part of a call: the whole call, or a share of it."""

    worker: WorkerProcess
    indices: set[int] | None  # plan indexes it is to analyse; None: all the lead's
    done: bool = False
    current: int | None = None  # the file it began and has not answered for
    returncode: int | None = None


@dataclass(slots=True)
class _Call:
    pool: WorkerPool
    limits: AnalyzerLimits
    request: dict[str, Any]
    progress: Progress | None
    planned: list[str] | None = None
    files: dict[int, dict[str, Any]] = field(default_factory=dict)
    references: dict[int, dict[str, int]] = field(default_factory=dict)
    early_errors: list[dict[str, Any]] = field(default_factory=list)  # paths refused before the plan
    file_errors: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    finished: set[int] = field(default_factory=set)
    jobs: list[_Job] = field(default_factory=list)
    spare: list[WorkerProcess] = field(default_factory=list)  # leased helpers not (yet) given a share
    timed_out: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def analysis_type(self) -> str:
        return str(self.request["analysis_type"])

    async def run(self) -> bool:
        """Run the call to its end (or deadline); whether its lead worker had served a call before."""
        try:
            workers = await self.pool.lease(extra=self.pool.size - 1)
        except RuntimeError:
            raise Unavailable("the code analysis workers are stopped") from None
        except OSError as error:  # fork or exec failed
            log.error("could not start an analysis worker", error=str(error))
            raise Unavailable("the code analysis worker could not run; the server logged why") from None
        self.started = time.monotonic()  # the call's time runs from here, not from its wait for a worker
        lead, self.spare = workers[0], workers[1:]
        lead_was_warm = lead.jobs > 0
        self.jobs.append(_Job(lead, None))
        try:
            with anyio.move_on_after(self.limits.max_seconds + self.limits.grace_seconds) as scope:
                async with anyio.create_task_group() as tg:
                    await self._work(self.jobs[0], {**self.request, "ways": len(workers)}, tg)
            self.timed_out = scope.cancelled_caught
        finally:
            with anyio.CancelScope(shield=True):
                await self._release_all()
        return lead_was_warm

    async def _work(self, job: _Job, request: dict[str, Any], tg: anyio.abc.TaskGroup) -> None:
        worker = job.worker
        async with anyio.create_task_group() as drain:
            drain.start_soon(worker.drain_stderr)
            try:
                if not await worker.send(request):
                    return
                while True:
                    try:
                        event = await worker.receive()
                        if event is None:
                            return
                        if event["t"] == "done":
                            job.done = True
                            worker.jobs += 1
                            worker.retiring = bool(event.get("retire"))
                            return
                        finished = self._feed(event, job)
                    except (EventTooLarge, ValueError, KeyError, TypeError):
                        log.error("analysis worker sent a malformed event", pid=worker.pid)
                        worker.kill()
                        return
                    if event["t"] == "plan":
                        await self._hand_out(event.get("jobs") or [], tg)
                    elif finished is not None and self.progress is not None and self.planned is not None:
                        await self.progress(len(self.finished), len(self.planned), finished)
            finally:
                drain.cancel_scope.cancel()

    def _feed(self, event: dict[str, Any], job: _Job) -> str | None:
        """Take in one event; the path of the planned file it finished, if it did."""
        kind = event["t"]
        if kind == "plan":
            self.planned = [str(p) for p in event["files"]]
            if event.get("shareable") and not event.get("jobs"):
                try:
                    self.pool.grow()  # no helper was free: have one warm for the next large call
                except OSError as error:  # no more processes, for now: this call goes on without
                    log.warning("could not start an analysis worker", error=str(error))
        elif kind == "begin":
            job.current = int(event["i"])
        elif kind in ("file", "error"):
            if "i" not in event:
                self.early_errors.append(event["data"])
                return None
            i = int(event["i"])
            if kind == "file":
                self.files[i] = event["data"]
                self.references[i] = event["refs"]
            else:
                self.file_errors.append((i, event["data"]))
            self.finished.add(i)
            job.current = None
            return str(event["data"]["path"])
        return None

    async def _hand_out(self, shares: list[dict[str, Any]], tg: anyio.abc.TaskGroup) -> None:
        remaining = self.limits.max_seconds - (time.monotonic() - self.started)
        for share, helper in zip(shares, list(self.spare), strict=False):
            self.spare.remove(helper)
            job = _Job(helper, {int(i) for i, _display, _real in share["files"]})
            self.jobs.append(job)
            request = {
                "op": "share",
                "roots": self.request["roots"],
                "files": share["files"],
                "budget": share["budget"],
                "analysis_type": self.analysis_type,
                "limits": {**asdict(self.limits), "max_seconds": max(remaining, 0.0)},
            }
            tg.start_soon(self._work, job, request, tg)
        spare, self.spare = self.spare, []
        for helper in spare:  # not needed: back to the pool for other calls
            await self.pool.release(helper, reusable=True)

    async def _release_all(self) -> None:
        for job in self.jobs:
            if not job.done:
                job.worker.kill()
            code = await self.pool.release(job.worker, reusable=job.done)
            job.returncode = code if code is not None else job.worker.returncode
            if not job.done and self.planned is not None:
                log.warning(
                    "analysis worker stopped early",
                    returncode=job.returncode,
                    timed_out=self.timed_out,
                    stderr=job.worker.stderr_tail.decode("utf-8", "replace")[-2000:],
                )
        for helper in self.spare:
            await self.pool.release(helper, reusable=True)
        self.spare = []

    def diagnosis(self) -> dict[str, Any]:
        lead = self.jobs[0] if self.jobs else None
        if lead is None:
            return {}
        stderr = lead.worker.stderr_tail.decode("utf-8", "replace")[-2000:]
        return {"returncode": lead.returncode, "timed_out": self.timed_out, "stderr": stderr}

    async def result(self) -> dict[str, Any]:
        assert self.planned is not None
        self._account_for_the_rest()
        files = {self.planned[i]: info for i, info in sorted(self.files.items())}
        references = {self.planned[i]: refs for i, refs in self.references.items()}
        if len(files) > INLINE_CONSOLIDATION_FILES:
            imports, consolidated = await anyio.to_thread.run_sync(finish, files, references, self.analysis_type)
        else:
            imports, consolidated = finish(files, references, self.analysis_type)
        out = [{**info, "imports": imports[path]} if path in imports else info for path, info in files.items()]
        # Plan order, as one worker would have reported them.
        errors = self.early_errors + [data for _, data in sorted(self.file_errors, key=lambda e: e[0])]
        return {"files": out, "errors": errors, "consolidated": consolidated}

    def _account_for_the_rest(self) -> None:
        assert self.planned is not None
        shared = set().union(*(job.indices for job in self.jobs if job.indices is not None))
        for job in self.jobs:
            indices = job.indices if job.indices is not None else set(range(len(self.planned))) - shared
            code = job.returncode
            killed_by = -code if code is not None and code < 0 else None
            for i in sorted(indices - self.finished):
                path = self.planned[i]
                if self.timed_out:
                    reason, message = Reason.TIME_LIMIT, "the call's time limit ran out before this file was analysed"
                elif i == job.current:
                    how = _signal_name(killed_by) if killed_by else f"exit status {code}"
                    reason, message = Reason.PARSER_CRASHED, f"the analysis worker died on this file ({how})"
                else:
                    reason, message = Reason.NOT_ANALYSED, "the analysis worker stopped before this file"
                self.file_errors.append((i, error(path, reason, message)))
                self.finished.add(i)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
