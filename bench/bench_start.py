"""Start-up: from spawning a stdio server to its answer to `initialize`, handoff against the no-op.

    .venv/bin/python bench/bench_start.py [--runs 10]

Both servers are started as a client would start them (a subprocess speaking JSON-RPC on stdio);
handoff runs on a fresh SQLite file (first run migrates it, later runs find it current), the
no-op server is bench/noop_server.py on the same SDK. Also times `handoff --version`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HANDOFF = str(Path(sys.executable).with_name("handoff"))
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}},
}


def time_to_initialize(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
    process.stdin.flush()
    line = process.stdout.readline()
    elapsed = time.perf_counter() - started
    process.stdin.close()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if b'"result"' not in line:
        raise RuntimeError(f"{command[0]} did not answer initialize: {line[:200]!r}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HANDOFF_DATABASE_URL": f"sqlite:///{tmp}/start.db", "HANDOFF_LOG_LEVEL": "WARNING"}
        time_to_initialize([HANDOFF, "serve", "--transport", "stdio"], env)  # migrates the fresh file
        ours, floor, version = [], [], []
        for _ in range(args.runs):
            ours.append(time_to_initialize([HANDOFF, "serve", "--transport", "stdio"], env))
            floor.append(time_to_initialize([sys.executable, str(HERE / "noop_server.py"), "--stdio"], env))
            started = time.perf_counter()
            subprocess.run([HANDOFF, "--version"], capture_output=True, check=True)
            version.append(time.perf_counter() - started)
    p50_ours, p50_floor = statistics.median(ours), statistics.median(floor)
    print(
        json.dumps(
            {
                "handoff_stdio_initialize_p50_ms": round(1000 * p50_ours),
                "noop_stdio_initialize_p50_ms": round(1000 * p50_floor),
                "ratio": round(p50_ours / p50_floor, 2),
                "handoff_version_p50_ms": round(1000 * statistics.median(version)),
            }
        )
    )
    print(
        f"{'PASS' if p50_ours <= 1.3 * p50_floor else 'MISS'}  stdio start -> initialize <= 1.3x the no-op: "
        f"{p50_ours / p50_floor:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
