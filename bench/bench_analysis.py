"""Throughput and memory of analyze_codebase's analysis on this repository's own src/.

Two ways, each `structure` and `full`, several rounds (median reported):

  worker      SubprocessAnalyzer: what the tool does per call (process start, confinement,
              parsing, extraction, JSON events, consolidation). Peak memory = the largest
              worker's max RSS (RUSAGE_CHILDREN).
  in-process  engine.run in this process: the analysis alone, without the process boundary.
              Peak memory = tracemalloc peak (Python objects; tree-sitter's C heap not included).

Usage: .venv/bin/python bench/bench_analysis.py [--rounds N] [--path DIR]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import tracemalloc
from pathlib import Path

import anyio

from handoff.analysis import engine
from handoff.analysis.runner import SubprocessAnalyzer

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def source_size(result: dict[str, object]) -> tuple[int, int]:
    files = result["files"]
    assert isinstance(files, list)
    return len(files), sum(int(f["bytes"]) for f in files)


async def bench_worker(path: str, analysis_type: str, rounds: int) -> dict[str, float]:
    analyzer = SubprocessAnalyzer([ROOT])
    times = []
    result: dict[str, object] = {}
    for _ in range(rounds):
        started = time.perf_counter()
        result = await analyzer.analyze([path], analysis_type)
        times.append(time.perf_counter() - started)
    files, size = source_size(result)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    median = statistics.median(times)
    return {"files": files, "bytes": size, "seconds": median, "peak_mib": peak_kib / 1024}


def bench_in_process(path: str, analysis_type: str, rounds: int) -> dict[str, float]:
    times = []
    result: dict[str, object] = {}
    for _ in range(rounds):
        started = time.perf_counter()
        result = engine.run([ROOT], [path], analysis_type)
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    engine.run([ROOT], [path], analysis_type)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    files, size = source_size(result)
    return {"files": files, "bytes": size, "seconds": statistics.median(times), "peak_mib": peak / MIB}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--path", default="src")
    args = parser.parse_args()
    print(f"analysing {ROOT / args.path}, median of {args.rounds} rounds")
    print(f"{'mode':<11} {'type':<10} {'files':>6} {'KiB':>7} {'ms':>8} {'files/s':>9} {'MiB/s':>7} {'peak MiB':>9}")
    for analysis_type in ("structure", "full"):
        rows = [
            ("worker", anyio.run(bench_worker, args.path, analysis_type, args.rounds)),
            ("in-process", bench_in_process(args.path, analysis_type, args.rounds)),
        ]
        for mode, r in rows:
            print(
                f"{mode:<11} {analysis_type:<10} {int(r['files']):>6} {r['bytes'] / 1024:>7.0f} "
                f"{r['seconds'] * 1000:>8.1f} {r['files'] / r['seconds']:>9.0f} "
                f"{r['bytes'] / MIB / r['seconds']:>7.2f} {r['peak_mib']:>9.1f}"
            )
    print(f"bench process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
