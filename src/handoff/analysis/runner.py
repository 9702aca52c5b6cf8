"""Running an analysis in a separate, resource-capped process, and reading its events.

Why a process per call and not a thread: tree-sitter and its grammars are C code, and a grammar
bug on hostile input can crash or balloon the process that runs it. Here that process is a worker
with its own address-space and CPU limits and a hard deadline after which it is killed; the server
only reads JSON lines. The cost is a ~50 ms interpreter start per call, and the worker streams
one event per file, so a crash or a kill still returns every file finished before it.
"""

from __future__ import annotations

import json
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from subprocess import PIPE
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from handoff.analysis.reasons import Reason
from handoff.errors import Unavailable
from handoff.logs import get_logger

log = get_logger(__name__)

MIB = 1024 * 1024
MAX_EVENT_BYTES = 64 * MIB
STDERR_KEEP = 8192

Progress = Callable[[int, int, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AnalyzerLimits:
    max_file_bytes: int = 1 * MIB
    max_files: int = 500
    max_total_bytes: int = 32 * MIB
    max_seconds: float = 30.0
    parse_seconds: float = 5.0
    memory_bytes: int = 1024 * MIB
    max_concurrent: int = 2
    grace_seconds: float = 10.0  # worker start-up and consolidation on top of max_seconds


class SubprocessAnalyzer:
    """The analyzer port's adapter: confined, limited, out-of-process analysis."""

    def __init__(
        self,
        roots: Sequence[Path],
        limits: AnalyzerLimits | None = None,
        *,
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.roots = [Path(r) for r in roots] or [Path.cwd()]
        self.limits = limits or AnalyzerLimits()
        # e.g. ("setpriv", "--reuid=analysis", ...) to run workers as another user.
        self.command = [*command_prefix, sys.executable, "-m", "handoff.analysis.worker"]
        self._slots = anyio.Semaphore(self.limits.max_concurrent)

    @property
    def max_files(self) -> int:
        return self.limits.max_files

    async def analyze(
        self, paths: Sequence[str], analysis_type: str, progress: Progress | None = None
    ) -> dict[str, Any]:
        request = {
            "roots": [str(r) for r in self.roots],
            "paths": list(paths),
            "analysis_type": analysis_type,
            "limits": asdict(self.limits),
        }
        async with self._slots:
            collector = _Collector(analysis_type, progress)
            returncode, stderr = await self._run(json.dumps(request).encode(), collector)
        if collector.planned is None:
            log.error("analysis worker failed before planning", returncode=returncode, stderr=stderr[-2000:])
            raise Unavailable("the code analysis worker could not run; the server logged why")
        if collector.done is None:
            log.warning(
                "analysis worker stopped early",
                returncode=returncode,
                timed_out=collector.timed_out,
                stderr=stderr[-2000:],
            )
        return await collector.result(returncode)

    async def _run(self, request: bytes, collector: _Collector) -> tuple[int | None, str]:
        stderr_tail = bytearray()
        process: Process | None = None
        with anyio.move_on_after(self.limits.max_seconds + self.limits.grace_seconds) as scope:
            process = await anyio.open_process(self.command, stdin=PIPE, stdout=PIPE, stderr=PIPE)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_drain, process, stderr_tail)
                    assert process.stdin is not None and process.stdout is not None
                    try:
                        await process.stdin.send(request)
                        await process.stdin.aclose()
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        pass
                    lines = BufferedByteReceiveStream(process.stdout)
                    while True:
                        try:
                            line = await lines.receive_until(b"\n", MAX_EVENT_BYTES)
                        except (anyio.EndOfStream, anyio.IncompleteRead):
                            break
                        except anyio.DelimiterNotFound:
                            process.kill()
                            break
                        await collector.feed(json.loads(line))
                    await process.wait()
            finally:
                if process.returncode is None:
                    process.kill()
                with anyio.CancelScope(shield=True):
                    await process.aclose()
        collector.timed_out = scope.cancelled_caught
        returncode = process.returncode if process is not None else None
        return returncode, stderr_tail.decode("utf-8", "replace")


async def _drain(process: Process, keep: bytearray) -> None:
    assert process.stderr is not None
    try:
        async for chunk in process.stderr:
            keep.extend(chunk)
            del keep[:-STDERR_KEEP]
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass


class _Collector:
    """Folds the worker's events into a result, and into progress reports."""

    def __init__(self, analysis_type: str, progress: Progress | None) -> None:
        self.analysis_type = analysis_type
        self.progress = progress
        self.planned: list[str] | None = None
        self.files: dict[str, dict[str, Any]] = {}
        self.errors: list[dict[str, Any]] = []
        self.finished: set[str] = set()
        self.current: str | None = None
        self.done: dict[str, Any] | None = None
        self.timed_out = False

    async def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("t")
        if kind == "plan":
            self.planned = list(event["files"])
            return
        if kind == "begin":
            self.current = event["path"]
            return
        if kind == "done":
            self.done = event
            return
        data = event["data"]
        if kind == "file":
            self.files[data["path"]] = data
        else:
            self.errors.append(data)
        if self.planned is not None:
            self.finished.add(data["path"])
            self.current = None
            if self.progress is not None:
                await self.progress(len(self.finished), len(self.planned), data["path"])

    async def result(self, returncode: int | None) -> dict[str, Any]:
        assert self.planned is not None
        if self.done is not None:
            imports, consolidated = self.done["imports"], self.done["consolidated"]
        else:
            self._account_for_the_rest(returncode)
            from handoff.analysis.engine import finish  # tree-sitter: loaded by the first analysis

            imports, consolidated = await anyio.to_thread.run_sync(
                finish, self.files, {p: Counter[str]() for p in self.files}, self.analysis_type
            )
        files = []
        for path in self.planned:
            info = self.files.get(path)
            if info is not None:
                if path in imports:
                    info = {**info, "imports": imports[path]}
                files.append(info)
        return {"files": files, "errors": self.errors, "consolidated": consolidated}

    def _account_for_the_rest(self, returncode: int | None) -> None:
        assert self.planned is not None
        killed_by = -returncode if returncode is not None and returncode < 0 else None
        for path in self.planned:
            if path in self.finished:
                continue
            if self.timed_out:
                reason, message = Reason.TIME_LIMIT, "the call's time limit ran out before this file was analysed"
            elif path == self.current:
                how = signal.Signals(killed_by).name if killed_by else f"exit status {returncode}"
                reason, message = Reason.PARSER_CRASHED, f"the analysis worker died on this file ({how})"
            else:
                reason, message = Reason.NOT_ANALYSED, "the analysis worker stopped before this file"
            from handoff.analysis.engine import error  # tree-sitter: loaded by the first analysis

            self.errors.append(error(path, reason, message))
