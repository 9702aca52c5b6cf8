"""Throughput and latency of analyze_codebase's analysis on this repository's own source.

  calls       SubprocessAnalyzer, what the tool does per call (confinement, parsing, extraction,
              JSON events, consolidation), on src/ tests/ bench/ in one call, `structure` and
              `full`; median wall time of --rounds after one warm-up call, and the workers' CPU
              time per call (a busy machine stretches the first, not the second).
  one file    the same analyzer, --calls one-file `structure` calls: p50 and p99 latency.
  in-process  engine.run in this process, one core: the analysis without the process boundary.

The goals of issue 12 (5 MiB/s on this repository's source with 2 cores; a one-file call in 20 ms
at p50) are printed with the ratio reached. `--baseline REV` measures the analysis code of a git
revision (its src/ exported to a temporary directory) in a child process, with this same script,
so both sets of numbers come from one run on one machine.

Usage: .venv/bin/python bench/bench_analysis.py [--rounds N] [--calls N] [--baseline REV] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
PATHS = ["src", "tests", "bench"]
ONE_FILE = "src/handoff/analysis/engine.py"
GOAL_MIB_S = 5.0
GOAL_P50_MS = 20.0


def source_size(result: dict[str, Any]) -> tuple[int, int]:
    files = result["files"]
    return len(files), sum(int(f["bytes"]) for f in files)


def worker_cpu_seconds(pids: list[int]) -> float:
    """CPU time used so far by live workers and by reaped children (a process per call)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return total + children.ru_utime + children.ru_stime


def worker_peak_mib(pids: list[int]) -> float:
    """The largest peak RSS among live workers (VmHWM), or of reaped children (one per call)."""
    peaks = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        peaks += [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")]
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return max([*peaks, children])


async def measure_calls(rounds: int, calls: int) -> dict[str, Any]:
    from handoff.analysis.runner import SubprocessAnalyzer

    analyzer = SubprocessAnalyzer([ROOT])
    # Other work on the machine takes cores from the workers: wall times are only as good as this.
    out: dict[str, Any] = {"cpus": os.cpu_count(), "load": os.getloadavg()}
    try:
        start = getattr(analyzer, "start", None)  # as the server does at start-up (older revisions had none)
        if start is not None:
            await start()
        for analysis_type in ("structure", "full"):
            await analyzer.analyze(PATHS, analysis_type)  # warm-up: workers started, grammars loaded
            times = []
            result: dict[str, Any] = {}
            pids = getattr(analyzer, "worker_pids", [])
            cpu = worker_cpu_seconds(pids)
            for _ in range(rounds):
                started = time.perf_counter()
                result = await analyzer.analyze(PATHS, analysis_type)
                times.append(time.perf_counter() - started)
            cpu = (worker_cpu_seconds(pids) - cpu) / rounds
            files, size = source_size(result)
            out[analysis_type] = {"files": files, "bytes": size, "seconds": statistics.median(times), "cpu": cpu}
        await analyzer.analyze([ONE_FILE], "structure")
        latencies = []
        for _ in range(calls):
            started = time.perf_counter()
            await analyzer.analyze([ONE_FILE], "structure")
            latencies.append(time.perf_counter() - started)
        latencies.sort()
        out["one_file"] = {
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "calls": calls,
        }
        out["worker_peak_mib"] = worker_peak_mib(getattr(analyzer, "worker_pids", []))
    finally:
        close = getattr(analyzer, "aclose", None)  # older revisions had no warm workers to stop
        if close is not None:
            await close()
    return out


def measure_in_process(rounds: int) -> dict[str, Any]:
    from handoff.analysis import engine

    engine.run([ROOT], PATHS, "structure")
    times = []
    result: dict[str, Any] = {}
    for _ in range(rounds):
        started = time.perf_counter()
        result = engine.run([ROOT], PATHS, "structure")
        times.append(time.perf_counter() - started)
    files, size = source_size(result)
    return {"files": files, "bytes": size, "seconds": statistics.median(times)}


def measure(rounds: int, calls: int) -> dict[str, Any]:
    out = anyio.run(measure_calls, rounds, calls)
    out["in_process"] = measure_in_process(rounds)
    return out


def baseline(revision: str, rounds: int, calls: int) -> dict[str, Any]:
    """This script's measurements of `revision`'s src/, in a child process."""
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision, "src"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        env = {**os.environ, "PYTHONPATH": str(Path(tmp) / "src")}
        command = [sys.executable, __file__, "--json", "--rounds", str(rounds), "--calls", str(calls)]
        child = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(child.stdout)
    return result


def row(label: str, r: dict[str, Any]) -> str:
    seconds = r["seconds"]
    cpu = f"{r['cpu'] * 1000:>8.1f}" if "cpu" in r else f"{'':>8}"
    return (
        f"  {label:<22} {r['files']:>6} {r['bytes'] / 1024:>7.0f} {seconds * 1000:>8.1f} "
        f"{r['files'] / seconds:>8.0f} {r['bytes'] / MIB / seconds:>7.2f} {cpu}"
    )


def report(title: str, m: dict[str, Any]) -> None:
    load = ", ".join(f"{x:.2f}" for x in m["load"])
    print(f"{title} ({m['cpus']} CPUs; load average before: {load})")
    print(f"  {'':<22} {'files':>6} {'KiB':>7} {'ms':>8} {'files/s':>8} {'MiB/s':>7} {'CPU ms':>8}")
    print(row("calls, structure", m["structure"]))
    print(row("calls, full", m["full"]))
    print(row("in-process, structure", m["in_process"]))
    one = m["one_file"]
    print(f"  one-file call ({one['calls']} calls): p50 {one['p50_ms']:.1f} ms, p99 {one['p99_ms']:.1f} ms")
    print(f"  worker peak RSS: {m['worker_peak_mib']:.1f} MiB")


def mib_s(m: dict[str, Any]) -> float:
    s = m["structure"]
    return float(s["bytes"] / MIB / s["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--baseline", metavar="REV", help="also measure this git revision's analysis code")
    parser.add_argument("--quick", action="store_true", help="3 rounds, 50 calls (CI smoke run)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # for --baseline's child
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls = 3, 50
    current = measure(args.rounds, args.calls)
    if args.json:
        print(json.dumps(current))
        return
    print(f"analysing {', '.join(PATHS)} of {ROOT}; one file: {ONE_FILE}")
    report("this tree", current)
    if args.baseline:
        old = baseline(args.baseline, args.rounds, args.calls)
        report(f"baseline {args.baseline}", old)
        one, old_one = current["one_file"], old["one_file"]
        print(
            f"speed-up: structure {mib_s(current) / mib_s(old):.1f}x, "
            f"one-file p50 {old_one['p50_ms'] / one['p50_ms']:.1f}x, p99 {old_one['p99_ms'] / one['p99_ms']:.1f}x"
        )
    p50 = current["one_file"]["p50_ms"]
    print(
        f"goals: structure {mib_s(current):.2f} / {GOAL_MIB_S:g} MiB/s = {mib_s(current) / GOAL_MIB_S:.2f}; "
        f"one-file p50 {GOAL_P50_MS:g} / {p50:.1f} ms = {GOAL_P50_MS / p50:.2f} (>= 1 meets the goal)"
    )


if __name__ == "__main__":
    main()
