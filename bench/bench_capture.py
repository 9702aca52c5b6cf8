"""Capture benchmarks: import throughput, memory on a big log, and what a hook call costs.

    .venv/bin/python bench/bench_capture.py [--records 20000] [--big-mb 100] [--quick]

Logs are grown from a real Claude Code session in bench/handoff_quality/cases (fresh ids per
copy), so records have real shapes and sizes. Each number is printed next to a baseline measured
in the same run: reading the log without storing it (import), and a bare `python -c pass` start
(hook), so the ratios mean the same on a busy or an idle machine.
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
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "bench" / "handoff_quality" / "cases" / "cc-nextjs-todo-orchestrator" / "source.jsonl"
HANDOFF = str(Path(sys.executable).with_name("handoff"))


def grow_log(path: Path, records: int, session_id: str = "bench-session") -> None:
    """A Claude Code log of `records` lines: the real session repeated with fresh ids."""
    template = [json.loads(line) for line in SOURCE.read_text().splitlines() if line.strip()]
    template = [r for r in template if r.get("type") in ("user", "assistant")]
    with path.open("w") as out:
        written = 0
        while written < records:
            ids: dict[str, str] = {}
            for record in template:
                text = json.dumps(record)
                for old in set(_tool_ids(record)):
                    ids.setdefault(old, "toolu_" + uuid.uuid4().hex[:24])
                    text = text.replace(old, ids[old])
                copy = json.loads(text)
                copy["uuid"], copy["sessionId"] = str(uuid.uuid4()), session_id
                out.write(json.dumps(copy) + "\n")
                written += 1
                if written >= records:
                    return


def _tool_ids(record: dict[str, Any]) -> list[str]:
    content = (record.get("message") or {}).get("content")
    found = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict):
                found += [v for k, v in block.items() if k in ("id", "tool_use_id") and isinstance(v, str)]
    return found


def bench_import(records: int) -> dict[str, float]:
    import anyio

    from handoff.capture.detect import read_log
    from handoff.capture.records import ReadReport
    from handoff.config import Settings
    from handoff.container import Container
    from handoff.services.context import NewContext

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "session.jsonl"
        grow_log(log, records)
        started = time.perf_counter()
        count = sum(1 for _ in read_log(log, "claude-code", ReadReport()))
        read_seconds = time.perf_counter() - started

        async def store() -> tuple[float, int]:
            settings = Settings(database_url=f"sqlite:///{tmp}/bench.db")  # type: ignore[arg-type]
            async with Container.build(settings) as container:
                await container.imports.open("bench", "claude-code", {})
                report = ReadReport()
                items = (
                    NewContext(c.context_type, c.content, c.metadata, c.record_id)
                    for c in read_log(log, "claude-code", report)
                )
                began = time.perf_counter()
                result = await container.imports.append("bench", items, key_prefix="claude-code:")
                return time.perf_counter() - began, result.imported

        import_seconds, imported = anyio.run(store)
    return {
        "records": records,
        "entries": imported,
        "read_only_records_per_s": records / read_seconds,
        "import_records_per_s": records / import_seconds,
        "entries_per_s": imported / import_seconds,
        "import_vs_read": import_seconds / read_seconds,
        "parsed_entries": count,
    }


def bench_big_log(megabytes: int) -> dict[str, float]:
    """`handoff import` of a log this big, as a subprocess: its peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "big.jsonl"
        per_record = max(1, SOURCE.stat().st_size // max(1, len(SOURCE.read_text().splitlines())))
        grow_log(log, megabytes * 1024 * 1024 // per_record)
        env = {**os.environ, "HANDOFF_DATABASE_URL": f"sqlite:///{tmp}/big.db"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        done = subprocess.run(
            [HANDOFF, "import", str(log), "--json"], env=env, capture_output=True, text=True, check=True
        )
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        result = json.loads(done.stdout)
        return {
            "log_mb": log.stat().st_size / 1024 / 1024,
            "imported": result["imported"],
            "seconds": seconds,
            "peak_rss_mb": max(peak, before) / 1024,
        }


def bench_hook(entries: int, calls: int) -> dict[str, float]:
    """Hook calls on a session that already holds `entries` entries; the transcript grows a little each call."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "abc123.jsonl"
        grow_log(log, entries + calls * 4, session_id="abc123")
        lines = log.read_text().splitlines(keepends=True)
        log.write_text("".join(lines[:entries]))
        env = {**os.environ, "HANDOFF_DATABASE_URL": f"sqlite:///{tmp}/hook.db"}
        subprocess.run(
            [HANDOFF, "import", str(log), "--session-key", "claude-code-abc123"],
            env=env,
            check=True,
            capture_output=True,
        )
        payload = json.dumps({"session_id": "abc123", "transcript_path": str(log), "hook_event_name": "PostToolUse"})
        hook_times, wait_times, floor = [], [], []
        for call in range(calls):
            with log.open("a") as handle:
                handle.write("".join(lines[entries + call * 4 : entries + call * 4 + 4]))
            started = time.perf_counter()
            subprocess.run([HANDOFF, "hook", "claude-code"], input=payload, text=True, env=env, check=True)
            hook_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run([HANDOFF, "hook", "claude-code", "--wait"], input=payload, text=True, env=env, check=True)
            wait_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            floor.append(time.perf_counter() - started)
    return {
        "session_entries": entries,
        "hook_p50_ms": 1000 * statistics.median(hook_times),
        "hook_p95_ms": 1000 * _p95(hook_times),
        "hook_wait_p50_ms": 1000 * statistics.median(wait_times),
        "hook_wait_p95_ms": 1000 * _p95(wait_times),
        "python_start_p50_ms": 1000 * statistics.median(floor),
        "hook_vs_python_start": statistics.median(hook_times) / statistics.median(floor),
    }


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--hook-entries", type=int, default=5_000)
    parser.add_argument("--hook-calls", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI smoke runs")
    args = parser.parse_args()
    if args.quick:
        args.records, args.big_mb, args.hook_entries, args.hook_calls = 3_000, 5, 500, 5
    for name, result in (
        ("import", bench_import(args.records)),
        ("big_log", bench_big_log(args.big_mb)),
        ("hook", bench_hook(args.hook_entries, args.hook_calls)),
    ):
        print(name, json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
