"""Latency of handoff's core tools against the floor: a no-op tool on the same SDK and transport.

One run starts two real servers on loopback, each as a subprocess on its own ephemeral port:
`handoff serve --transport http` on a fresh SQLite file in a temp dir, and bench/noop_server.py
(the same SDK, streamable HTTP, stateful, SSE responses, DNS-rebinding protection on). One SDK
`Client(url)` per server then calls, round-robin in a shuffled order each round so machine noise
hits every kind alike:

  floor              noop() on the no-op server
  floor_64KiB        noop_payload(64 KiB string): the floor plus carrying 64 KiB of arguments
  update_200B        update_context, 200 B message
  update_64KiB       update_context, 64 KiB file
  handoff_10k        request_handoff (context_transfer) on a session of 10,000 mixed entries

Usage: .venv/bin/python bench/bench_core.py [--quick] [--calls N] [--entries N]
Prints a table and PASS/MISS per goal, writes bench/results/latest.json, and exits 0 whether or
not the goals are met (non-zero only when the benchmark itself cannot run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import queue
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from mcp.client import Client
from sqlalchemy import event

from handoff.config import Settings
from handoff.container import Container
from handoff.logs import configure_logging

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "results" / "latest.json"
_BANNER = re.compile(r"serving MCP at (http://\S+/mcp)")

SMALL = 200
LARGE = 64 * 1024


@dataclass(frozen=True)
class Plan:
    calls: int
    warmup: int
    entries: int


FULL = Plan(calls=400, warmup=40, entries=10_000)
QUICK = Plan(calls=40, warmup=5, entries=1_000)


@dataclass(frozen=True)
class Goal:
    name: str
    kind: str
    floor: str
    limit: float  # p50(kind) <= limit * p50(floor)


def goals(entries: int) -> list[Goal]:
    return [
        Goal("update_context p50 <= 1.3x floor (200 B)", "update_200B", "floor", 1.3),
        Goal(
            "update_context p50 <= 1.3x floor (64 KiB; floor carries the same 64 KiB)",
            "update_64KiB",
            "floor_64KiB",
            1.3,
        ),
        Goal(f"request_handoff on {entries:,} entries p50 <= 3x floor", handoff_kind(entries), "floor", 3.0),
    ]


def handoff_kind(entries: int) -> str:
    return f"handoff_{entries // 1000}k" if entries % 1000 == 0 else f"handoff_{entries}"


@dataclass
class Kind:
    name: str
    call: Callable[[], Awaitable[None]]
    samples: list[float] = field(default_factory=list)


# -- servers --------------------------------------------------------------------------------------


def _handoff_command() -> list[str]:
    script = Path(sys.executable).with_name("handoff")
    found = str(script) if script.exists() else shutil.which("handoff")
    if found is None:
        raise SystemExit("the `handoff` console script is not installed next to this Python")
    return [found, "serve", "--transport", "http", "--host", "127.0.0.1", "--port", "0"]


@contextmanager
def running(command: list[str], env: dict[str, str], log_path: Path, timeout: float = 60.0) -> Iterator[str]:
    """Start a server subprocess, yield its MCP URL once it announces it, stop it with SIGTERM."""
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        url = None
        while url is None:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{command[0]} did not announce its URL within {timeout}s:\n{tail}")
            if match := _BANNER.search(line):
                url = match.group(1)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
    env.update(extra)
    return env


# -- data -----------------------------------------------------------------------------------------

_WORDS = re.findall(
    r"\w+",
    "the session context agent handoff brief token budget sqlite digest entry file tool call message system "
    "test failing passing refactor module function class import return value request response error retry "
    "backoff cursor page sequence number metadata owner target",
)


def _text(rng: random.Random, size: int) -> str:
    words = _WORDS
    out: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(words)
        out.append(word)
        length += len(word) + 1
    return " ".join(out)[:size]


def _code(rng: random.Random, size: int) -> str:
    lines: list[str] = []
    length = 0
    n = 0
    while length < size:
        n += 1
        line = f"def handler_{n}(request, session):\n    return session.apply(request, retries={rng.randint(1, 9)})\n"
        lines.append(line)
        length += len(line)
    return "".join(lines)[:size]


def entry_for(rng: random.Random, i: int) -> tuple[str, str, dict[str, Any]]:
    """A realistic mix: conversation, file reads/edits, tool calls with test output, system events."""
    roll = rng.random()
    if roll < 0.40:
        role = "user" if i % 7 == 0 else "assistant"
        meta: dict[str, Any] = {"role": role}
        body = _text(rng, rng.randint(80, 1500))
        marker = rng.random()
        if marker < 0.04:
            meta["kind"] = "decision"
        elif marker < 0.07:
            meta["kind"] = "task"
        elif marker < 0.09:
            meta["kind"] = "task_done"
        elif marker < 0.11:
            body = f"Rejected: {_text(rng, 60)}\n{body}"
        elif marker < 0.14:
            body = f"{body}\n- Decision: {_text(rng, 50)}\nTODO: {_text(rng, 40)}"
        return "message", body, meta
    if roll < 0.65:
        path = f"src/pkg/module_{rng.randint(1, 120)}.py"
        action = rng.choice(["read", "read", "edit", "create"])
        return "file", _code(rng, rng.randint(300, 6000)), {"path": path, "action": action}
    if roll < 0.92:
        tool = rng.choice(["bash", "grep", "read_file", "pytest", "git"])
        failed = rng.random() < 0.15
        meta = {"tool": tool, "status": "error" if failed else "ok", "exit_code": 1 if failed else 0}
        output = _text(rng, rng.randint(100, 3000))
        if tool == "pytest":
            test = f"tests/test_mod{rng.randint(1, 40)}.py::test_case_{rng.randint(1, 30)}"
            output += f"\n{'FAILED' if failed else 'PASSED'} {test} - AssertionError\n"
        return "tool_call", output, meta
    return "system", rng.choice(["context compacted", "session resumed", "model switched"]), {"event": "runtime"}


async def fill(database_url: str, entries: int) -> float:
    """Create the sessions the benchmark writes to, and the big session, through the real services."""
    started = time.perf_counter()
    container = Container.build(Settings(database_url=database_url))

    # Preparation only: skip the per-commit fsync while filling. The server opens its own
    # connections with its own pragmas (synchronous=FULL); the rows are the same either way.
    @event.listens_for(container.engine.sync_engine, "connect")
    def _fast_fill(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    rng = random.Random(20240611)
    async with container as c:
        for key in ("bench-small", "bench-large", "bench-big"):
            await c.sessions.register(key, "agent-a", {"project": "bench"}, None)
        last = 0
        for i in range(entries):
            kind, content, meta = entry_for(rng, i)
            result = await c.context.append("bench-big", kind, content, meta, None, None)
            last = result.entry.sequence_number
    if last != entries:
        raise RuntimeError(f"filled {last} entries, expected {entries}")
    return time.perf_counter() - started


# -- measuring ------------------------------------------------------------------------------------


def _checked(result: Any, what: str) -> Any:
    if result.is_error:
        text = result.content[0].text if result.content else "?"
        raise RuntimeError(f"{what} failed: {text[:500]}")
    return result.structured_content


def build_kinds(handoff: Client, noop: Client, entries: int) -> list[Kind]:
    small = _text(random.Random(1), SMALL)
    large = _code(random.Random(2), LARGE)
    assert len(small.encode()) == SMALL and len(large.encode()) == LARGE

    async def floor() -> None:
        _checked(await noop.call_tool("noop", {}), "noop")

    async def floor_large() -> None:
        _checked(await noop.call_tool("noop_payload", {"payload": large}), "noop_payload")

    async def update_small() -> None:
        args = {"session_key": "bench-small", "context_type": "message", "content": small}
        _checked(await handoff.call_tool("update_context", {**args, "metadata": {"role": "assistant"}}), "update")

    async def update_large() -> None:
        meta = {"path": "src/pkg/big_module.py", "action": "read"}
        args = {"session_key": "bench-large", "context_type": "file", "content": large, "metadata": meta}
        _checked(await handoff.call_tool("update_context", args), "update")

    async def handoff_big() -> None:
        args = {"session_key": "bench-big", "target_agent": "agent-b", "handoff_type": "context_transfer"}
        out = _checked(await handoff.call_tool("request_handoff", args), "request_handoff")
        if not out["handoff"]["brief"]:
            raise RuntimeError("request_handoff returned an empty brief")

    return [
        Kind("floor", floor),
        Kind("floor_64KiB", floor_large),
        Kind("update_200B", update_small),
        Kind("update_64KiB", update_large),
        Kind(handoff_kind(entries), handoff_big),
    ]


async def measure(kinds: list[Kind], plan: Plan, seed: int = 7) -> None:
    rng = random.Random(seed)
    order = list(kinds)
    for round_ in range(plan.warmup + plan.calls):
        rng.shuffle(order)
        for kind in order:
            started = time.perf_counter()
            await kind.call()
            elapsed = time.perf_counter() - started
            if round_ >= plan.warmup:
                kind.samples.append(elapsed * 1000)


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarise(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": round(percentile(samples, 0.50), 3),
        "p99_ms": round(percentile(samples, 0.99), 3),
        "mean_ms": round(statistics.fmean(samples), 3),
        "min_ms": round(min(samples), 3),
        "max_ms": round(max(samples), 3),
    }


# -- reporting ------------------------------------------------------------------------------------


def report(results: dict[str, dict[str, float]], targets: list[Goal]) -> list[dict[str, Any]]:
    floor = results["floor"]
    print(f"\n{'kind':<16}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'p50/floor':>11}{'p99/floor':>11}")
    for name, r in results.items():
        print(
            f"{name:<16}{r['n']:>6}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}"
            f"{r['p50_ms'] / floor['p50_ms']:>10.2f}x{r['p99_ms'] / floor['p99_ms']:>10.2f}x"
        )
    for r in results.values():
        r["p50_vs_floor"] = round(r["p50_ms"] / floor["p50_ms"], 3)
        r["p99_vs_floor"] = round(r["p99_ms"] / floor["p99_ms"], 3)
    verdicts = []
    print()
    for goal in targets:
        ratio = results[goal.kind]["p50_ms"] / results[goal.floor]["p50_ms"]
        passed = ratio <= goal.limit
        verdicts.append(
            {"goal": goal.name, "kind": goal.kind, "floor": goal.floor, "ratio": round(ratio, 3), "limit": goal.limit}
            | {"pass": passed}
        )
        print(f"{'PASS' if passed else 'MISS'}  {goal.name}: {ratio:.2f}x (limit {goal.limit}x)")
    return verdicts


async def run(plan: Plan, out: Path, quick: bool, log_level: str) -> None:
    configure_logging("WARNING")
    workdir = Path(tempfile.mkdtemp(prefix="handoff-bench-"))
    try:
        database_url = f"sqlite:///{workdir / 'bench.db'}"
        print(f"filling a {plan.entries}-entry session in {workdir} ...", flush=True)
        fill_seconds = await fill(database_url, plan.entries)
        print(f"filled in {fill_seconds:.1f}s; starting servers", flush=True)
        # At INFO (the server's default) one JSON request line per call goes to stderr (a file here).
        handoff_env = _env(HANDOFF_DATABASE_URL=database_url, HANDOFF_LOG_LEVEL=log_level)
        noop_cmd = [sys.executable, str(BENCH_DIR / "noop_server.py"), "--port", "0"]
        with (
            running(_handoff_command(), handoff_env, workdir / "handoff.log") as handoff_url,
            running(noop_cmd, _env(), workdir / "noop.log") as noop_url,
        ):
            async with Client(handoff_url) as handoff, Client(noop_url) as noop:
                kinds = build_kinds(handoff, noop, plan.entries)
                print(f"measuring {plan.calls} calls per kind after {plan.warmup} warm-up rounds ...", flush=True)
                load_before = os.getloadavg()
                started = time.perf_counter()
                await measure(kinds, plan)
                seconds = time.perf_counter() - started
                load_after = os.getloadavg()
        results = {k.name: summarise(k.samples) for k in kinds}
        verdicts = report(results, goals(plan.entries))
        payload = {
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": "quick" if quick else "full",
            "plan": {"calls": plan.calls, "warmup": plan.warmup, "entries": plan.entries},
            "machine": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "loadavg_before": [round(x, 2) for x in load_before],
                "loadavg_after": [round(x, 2) for x in load_after],
            },
            "server_log_level": log_level,
            "fill_seconds": round(fill_seconds, 2),
            "measure_seconds": round(seconds, 2),
            "results": results,
            "goals": verdicts,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nwrote {out}  (load average {load_before[0]:.2f} -> {load_after[0]:.2f} on {os.cpu_count()} CPUs)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="handoff core latency vs. the SDK floor")
    parser.add_argument("--quick", action="store_true", help="small run for CI smoke tests (well under a minute)")
    parser.add_argument("--calls", type=int, help="measured calls per kind")
    parser.add_argument("--entries", type=int, help="entries in the handoff session")
    parser.add_argument(
        "--log-level", default="INFO", help="the handoff server's HANDOFF_LOG_LEVEL (INFO, its default)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    plan = Plan(
        calls=args.calls or base.calls,
        warmup=base.warmup,
        entries=args.entries or base.entries,
    )
    anyio.run(run, plan, args.out, args.quick, args.log_level)


if __name__ == "__main__":
    main()
