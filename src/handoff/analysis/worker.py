"""The analysis worker: `python -m handoff.analysis.worker`, kept warm by the server between calls.

Speaks JSON lines. It announces `{"t": "ready"}` once started, then reads one request per line on
stdin and answers with events on stdout, the last one `{"t": "done"}`. It exits when stdin closes
(the server stopped or died) or when it retires itself (see `_retiring`).

Before it touches any input it caps its own resources: address space, no file writes, no core
dumps, and CPU time, which the kernel counts for the process's whole life: each job gets its own
allowance on top of what was used before it (the soft limit, raised job by job), under a hard
lifetime limit. A crash or a kill here costs the server one job's unfinished files, never the server.
"""

from __future__ import annotations

import json
import resource
import select
import signal
import sys
from pathlib import Path
from typing import IO, Any

from handoff.analysis import engine
from handoff.analysis.queries import LANGUAGES, warm

MAX_REQUEST_BYTES = 16 * 1024 * 1024
LIFETIME_CPU_SECONDS = 3600  # then the worker retires and the pool starts a fresh one
CPU_GRACE_SECONDS = 5  # a job's CPU allowance is its wall-time limit plus this
MAX_JOBS = 2000  # a bound on slow leaks (fragmentation) in a long-lived process


def main() -> int:
    # Ctrl-C in a terminal signals the whole process group; the server decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, out = sys.stdin.buffer, sys.stdout
    _write(out, {"t": "ready"})
    _warm_up(stdin)
    parsers: engine.Parsers = {}
    capped = False
    jobs = 0
    while True:
        line = stdin.readline(MAX_REQUEST_BYTES)
        if not line:
            return 0
        request = json.loads(line)
        raw_limits = request.get("limits", {})
        if not capped:
            apply_limits(raw_limits)
            capped = True
        limits = engine.EngineLimits.of(raw_limits)
        _allow_cpu(limits.max_seconds)
        for event in _events(request, limits, parsers):
            _write(out, event)
        jobs += 1
        retire = _retiring(jobs, limits, raw_limits)
        _write(out, {"t": "done", "retire": retire})
        if retire:
            return 0


def _events(request: dict[str, Any], limits: engine.EngineLimits, parsers: engine.Parsers) -> Any:
    roots = [Path(r) for r in request["roots"]]
    analysis_type = str(request["analysis_type"])
    if request.get("op") == "share":
        files = [(int(i), str(display), str(real)) for i, display, real in request["files"]]
        return engine.share_events(roots, files, analysis_type, limits, int(request["budget"]), parsers=parsers)
    ways = int(request.get("ways", 1))
    return engine.events(roots, list(request["paths"]), analysis_type, limits, ways=ways, parsers=parsers)


def _write(out: IO[str], event: dict[str, Any]) -> None:
    out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
    out.write("\n")
    out.flush()


def _warm_up(stdin: IO[bytes]) -> None:
    """Compile every language's queries while no request is waiting (a few ms each, once)."""
    for language in LANGUAGES:
        if select.select([stdin], [], [], 0)[0]:
            return
        warm(language)


def _cap(limit: int, value: int) -> None:
    _soft, hard = resource.getrlimit(limit)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(limit, (value, value if hard == resource.RLIM_INFINITY else hard))


def apply_limits(limits: dict[str, Any]) -> None:
    if limits.get("memory_bytes"):
        _cap(resource.RLIMIT_AS, int(limits["memory_bytes"]))
    _cap(resource.RLIMIT_FSIZE, 0)
    _cap(resource.RLIMIT_CORE, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard == resource.RLIM_INFINITY or hard > LIFETIME_CPU_SECONDS:
        if soft == resource.RLIM_INFINITY or soft > LIFETIME_CPU_SECONDS:
            soft = LIFETIME_CPU_SECONDS
        resource.setrlimit(resource.RLIMIT_CPU, (soft, LIFETIME_CPU_SECONDS))


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _allow_cpu(max_seconds: float) -> None:
    """This job may use `max_seconds` (+ grace) of CPU from now on; past that, SIGXCPU ends it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    wanted = int(_cpu_used() + max_seconds) + CPU_GRACE_SECONDS
    soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _retiring(jobs: int, limits: engine.EngineLimits, raw: dict[str, Any]) -> bool:
    """Whether to stop after this job: when the next one could not get its full CPU allowance, the
    process has grown to half its memory allowance, or it has served many jobs."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY and _cpu_used() + limits.max_seconds + CPU_GRACE_SECONDS + 1 > hard:
        return True
    memory = int(raw.get("memory_bytes") or 0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return (memory > 0 and peak > memory // 2) or jobs >= MAX_JOBS


if __name__ == "__main__":
    sys.exit(main())
