"""The analysis worker: `python -m handoff.analysis.worker`, one call per process.

Reads one JSON request on stdin, caps its own resources (address space, CPU seconds, no file
writes, no core dumps) before it touches any input, then writes one JSON event per line on stdout.
A crash or a kill here costs the server one call's result, never the server.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Any

from handoff.analysis.engine import EngineLimits, events


def _cap(limit: int, value: int) -> None:
    _soft, hard = resource.getrlimit(limit)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(limit, (value, value if hard == resource.RLIM_INFINITY else hard))


def apply_limits(request: dict[str, Any]) -> None:
    limits = request.get("limits", {})
    if limits.get("memory_bytes"):
        _cap(resource.RLIMIT_AS, int(limits["memory_bytes"]))
    _cap(resource.RLIMIT_CPU, int(float(limits.get("max_seconds", 30))) + 5)
    _cap(resource.RLIMIT_FSIZE, 0)
    _cap(resource.RLIMIT_CORE, 0)


def main() -> int:
    request = json.loads(sys.stdin.buffer.read(16 * 1024 * 1024))
    apply_limits(request)
    out = sys.stdout
    for event in events(
        [Path(r) for r in request["roots"]],
        list(request["paths"]),
        str(request["analysis_type"]),
        EngineLimits.of(request.get("limits", {})),
    ):
        out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
