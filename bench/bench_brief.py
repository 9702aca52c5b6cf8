"""Does a handoff's cost stay flat as the history grows? request_handoff at 1k, 10k, 100k entries.

    .venv/bin/python bench/bench_brief.py [--sizes 1000,10000,100000] [--calls 30] [--quick]

Each session is filled through the real batch-append service (the same digest folding as
update_context) on a SQLite file, then request_handoff (2,000-token brief) is timed in process.
The ratio to the smallest session is the number that matters: the brief reads the bounded digest
and an indexed tail of the newest entries, so it should not grow with the history.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from bench_core import entry_for

from handoff.config import Settings
from handoff.container import Container
from handoff.logs import configure_logging
from handoff.services.context import NewContext


async def measure(size: int, calls: int, tmp: str) -> dict[str, float]:
    settings = Settings(database_url=f"sqlite:///{tmp}/brief-{size}.db")  # type: ignore[arg-type]
    rng = random.Random(size)
    async with Container.build(settings) as container:
        key = f"s{size}"
        await container.sessions.register(key, "agent-a", {}, None)
        started = time.perf_counter()
        for start in range(0, size, 1000):
            batch = []
            for i in range(start, min(size, start + 1000)):
                kind, content, meta = entry_for(rng, i)
                batch.append(NewContext(kind, content, meta, f"e{i}"))
            await container.context.append_batch(key, batch)
        fill_seconds = time.perf_counter() - started
        for _ in range(3):
            await container.handoffs.request(key, "agent-b", "context_transfer", {}, 2000)
        samples = []
        for _ in range(calls):
            began = time.perf_counter()
            await container.handoffs.request(key, "agent-b", "context_transfer", {}, 2000)
            samples.append(time.perf_counter() - began)
    ordered = sorted(samples)
    return {
        "entries": size,
        "fill_s": round(fill_seconds, 1),
        "p50_ms": round(1000 * statistics.median(samples), 2),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    configure_logging("WARNING")
    sizes = [1000, 10000] if args.quick else [int(s) for s in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.extend(anyio.run(measure, size, 10 if args.quick else args.calls, tmp) for size in sizes)
    base = results[0]["p50_ms"]
    for row in results:
        row["p50_vs_smallest"] = round(row["p50_ms"] / base, 2)
        print(json.dumps(row))
    flat = results[-1]["p50_vs_smallest"] <= 1.5
    print(
        f"{'PASS' if flat else 'MISS'}  request_handoff p50 at {sizes[-1]:,} entries <= 1.5x at {sizes[0]:,}: "
        f"{results[-1]['p50_vs_smallest']}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
