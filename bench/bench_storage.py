"""Production storage: append throughput on one vs two replicas (PostgreSQL), SQLite vs PostgreSQL latency.

One run starts three real `handoff serve --transport http` subprocesses on loopback: replicas A and
B on one PostgreSQL database (a fresh schema, dropped at the end) and S on a SQLite file in a temp
dir. Then, in the same run:

1. Throughput. 32 concurrent SDK clients (separate `Client(url)` connections, spread over
   `--client-procs` worker processes so one client process's GIL is not the ceiling) append 200 B
   messages for a fixed time, in four phases run in a freshly shuffled order each round:
     one/same   32 clients -> A, all to one session (appends serialise on its row lock)
     two/same   16 clients -> A + 16 -> B, the same session
     one/multi  32 clients -> A, client i to session i (32 sessions)
     two/multi  16 -> A + 16 -> B, 32 sessions
2. Latency. One client, update_context alternately on S (SQLite) and A (PostgreSQL), p50/p99.

For every phase it reads the CPU time each process used from /proc/<pid>/stat: the replicas, the
client worker processes, this process, and PostgreSQL (every `postgres` process plus what the
postmaster collected from exited backends; also the subset that are the replicas' own backends,
found by matching client ports to the replicas' sockets), and derives CPU ms per append.

Usage: .venv/bin/python bench/bench_storage.py [--quick] [--seconds S] [--rounds N] [--out PATH]
       [--pg-url URL] [--client-procs N] [--log-level LEVEL]
Prints tables, PASS/MISS for "two replicas must not be slower than one", writes
bench/results/storage.json; exits non-zero only when the benchmark itself cannot run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack, ExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import anyio
import asyncpg
from mcp.client import Client

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench_core import _checked, _text, summarise  # noqa: E402
from tests.e2e.servers import http_server  # noqa: E402

DEFAULT_OUT = BENCH_DIR / "results" / "storage.json"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
CLIENTS = 32
TICK = os.sysconf("SC_CLK_TCK")
PHASES = [("one", "same"), ("two", "same"), ("one", "multi"), ("two", "multi")]
CONTENT = _text(random.Random(3), 200)
META = {"role": "assistant"}
CALL_DEADLINE = 60.0


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: float  # per throughput phase
    warmup_seconds: float
    latency_calls: int
    latency_warmup: int


FULL = Plan(rounds=3, seconds=8.0, warmup_seconds=2.0, latency_calls=300, latency_warmup=30)
QUICK = Plan(rounds=1, seconds=2.5, warmup_seconds=1.0, latency_calls=40, latency_warmup=5)


# -- CPU accounting from /proc ---------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from #3 (state) on; comm may contain spaces


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """utime + stime (+ cutime + cstime: children it has waited for) of one process, in seconds."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14, 15)
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime (16, 17)
    return ticks / TICK


def _ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def cluster_pids(postmaster: int) -> list[int]:
    """The postmaster and its children (backends, checkpointer, WAL writer, ...) by reading /proc.

    Only our cluster's: other PostgreSQL instances on the machine (tests start throwaway ones) have
    their own postmaster.
    """
    children = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and _ppid(int(e.name)) == postmaster]
    return [postmaster, *children]


def postgres_cpu(postmaster: int) -> tuple[float, dict[int, float]]:
    """Total CPU of the cluster (live processes + exited backends the postmaster reaped) and per pid."""
    per_pid = {pid: cpu_seconds(pid, children=False) for pid in cluster_pids(postmaster)}
    total = sum(per_pid.values()) + cpu_seconds(postmaster) - per_pid[postmaster]  # + the reaped children
    return total, per_pid


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat), whoever used them."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICK


def socket_ports(pid: int) -> set[int]:
    """Local TCP ports of the sockets process `pid` holds open."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except (FileNotFoundError, PermissionError):
        return set()
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            parts = line.split()
            if parts[9] in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


@dataclass
class Snapshot:
    at: float
    procs: dict[str, float]
    pg_total: float
    pg_by_pid: dict[int, float]
    pg_sessions: int
    ours: dict[int, str]  # backend pid -> replica name


class Meter:
    """CPU snapshots of named processes and of PostgreSQL, plus which backends serve which replica."""

    def __init__(self, pg: asyncpg.Connection, postmaster: int, procs: dict[str, int]) -> None:
        self._pg = pg
        self._postmaster = postmaster
        self.procs = procs
        self._replicas: dict[str, int] = {}

    def replicas(self, **named: int) -> None:
        self._replicas = named

    async def snapshot(self) -> Snapshot:
        ours = await self._backends()
        sessions = await self._pg.fetchval("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        at = time.monotonic()
        procs = {name: cpu_seconds(pid) for name, pid in self.procs.items()}
        procs["bench"] = cpu_seconds(os.getpid(), children=False)
        total, by_pid = postgres_cpu(self._postmaster)
        procs["machine_busy"] = machine_busy_seconds()
        return Snapshot(at, procs, total, by_pid, int(sessions or 0), ours)

    async def _backends(self) -> dict[int, str]:
        rows = await self._pg.fetch("SELECT pid, client_port FROM pg_stat_activity WHERE client_port IS NOT NULL")
        by_port = {}
        for name, pid in self._replicas.items():
            for port in socket_ports(pid):
                by_port[port] = name
        return {r["pid"]: by_port[r["client_port"]] for r in rows if r["client_port"] in by_port}


def cpu_between(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    used = {name: round(b.procs[name] - a.procs.get(name, 0.0), 3) for name in b.procs}
    used["postgres_all"] = round(b.pg_total - a.pg_total, 3)
    accounted = sum(v for k, v in used.items() if k not in ("machine_busy", "postgres_all")) + used["postgres_all"]
    used["others"] = round(used.pop("machine_busy") - accounted, 3)  # other processes on the machine
    ours: dict[str, float] = {}
    for pid, replica in b.ours.items():
        ours[replica] = ours.get(replica, 0.0) + b.pg_by_pid.get(pid, 0.0) - a.pg_by_pid.get(pid, 0.0)
    for replica, seconds in sorted(ours.items()):
        used[f"postgres_backends_{replica}"] = round(seconds, 3)
    return {
        "wall_seconds": round(b.at - a.at, 3),
        "cpu_seconds": used,
        "new_pg_connections": b.pg_sessions - a.pg_sessions,
        "backends_alive_at_end": {r: sum(1 for v in b.ours.values() if v == r) for r in sorted(set(b.ours.values()))},
        "backends_replaced": len({p for p, r in a.ours.items()} - set(b.ours)),
    }


# -- client worker processes -----------------------------------------------------------------------


def worker_main(conn: Connection, spec: dict[str, Any]) -> None:
    """Runs in a child process: holds this worker's clients and runs append phases on command."""
    anyio.run(_worker, conn, spec)


async def _worker(conn: Connection, spec: dict[str, Any]) -> None:
    # spec["clients"]: one dict per client slot, {"index": g, "urls": {"one": url, "two": url}}
    async with AsyncExitStack() as stack:
        by_url: dict[tuple[int, str], Client] = {}
        slots: list[dict[str, Client]] = []
        for slot in spec["clients"]:
            chosen = {}
            for group, url in slot["urls"].items():
                key = (slot["index"], url)
                if key not in by_url:  # bounded by the parent's wait for "ready"
                    by_url[key] = await stack.enter_async_context(Client(url))
                chosen[group] = by_url[key]
            slots.append(chosen)
        conn.send(("ready", len(by_url)))
        while True:
            command = await anyio.to_thread.run_sync(conn.recv)
            if command[0] == "stop":
                break
            _, group, keys, start_at, end_at = command
            conn.send(("done", await _run_phase([s[group] for s in slots], keys, start_at, end_at)))


async def _run_phase(clients: list[Client], keys: list[str], start_at: float, end_at: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    last = 0.0

    async def loop(client: Client, key: str) -> None:
        nonlocal last
        args = {"session_key": key, "context_type": "message", "content": CONTENT, "metadata": META}
        while time.monotonic() < end_at:
            started = time.monotonic()
            with anyio.fail_after(CALL_DEADLINE):
                result = await client.call_tool("update_context", args)
            done = time.monotonic()
            if result.is_error:
                errors.append(result.content[0].text[:300] if result.content else "?")
            else:
                latencies.append((done - started) * 1000)
            last = max(last, done)

    # Pacing, not synchronisation: every worker starts its clients at the same agreed instant.
    await anyio.sleep(max(0.0, start_at - time.monotonic()))
    async with anyio.create_task_group() as tg:
        for client, key in zip(clients, keys, strict=True):
            tg.start_soon(loop, client, key)
    return {"ok": len(latencies), "errors": len(errors), "error_samples": errors[:3], "lat_ms": latencies, "last": last}


class Workers:
    def __init__(self, procs: int, url_a: str, url_b: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        per = CLIENTS // procs
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        self.slots: list[list[int]] = []
        for p in range(procs):
            indices = list(range(p * per, CLIENTS if p == procs - 1 else (p + 1) * per))
            spec = {
                "clients": [
                    {"index": g, "urls": {"one": url_a, "two": url_a if g < CLIENTS // 2 else url_b}} for g in indices
                ]
            }
            parent, child = ctx.Pipe()
            process = ctx.Process(target=worker_main, args=(child, spec), daemon=True)
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)
            self.slots.append(indices)

    @property
    def pids(self) -> dict[str, int]:
        return {f"clients_{i}": p.pid for i, p in enumerate(self.processes)}

    async def _recv(self, pipe: Connection, timeout: float) -> Any:
        with anyio.fail_after(timeout):
            ready = await anyio.to_thread.run_sync(pipe.poll, timeout)
        if not ready:
            raise RuntimeError("a client worker did not answer in time")
        return pipe.recv()

    async def ready(self) -> int:
        connections = 0
        for pipe in self.pipes:
            kind, n = await self._recv(pipe, 120)
            assert kind == "ready"
            connections += n
        return connections

    async def run(self, group: str, mode: str, start_at: float, end_at: float) -> dict[str, Any]:
        for pipe, indices in zip(self.pipes, self.slots, strict=True):
            keys = ["same" if mode == "same" else f"multi-{g:02d}" for g in indices]
            pipe.send(("run", group, keys, start_at, end_at))
        parts = [(await self._recv(pipe, end_at - time.monotonic() + CALL_DEADLINE + 30))[1] for pipe in self.pipes]
        return {
            "ok": sum(p["ok"] for p in parts),
            "errors": sum(p["errors"] for p in parts),
            "error_samples": [s for p in parts for s in p["error_samples"]][:5],
            "lat_ms": [x for p in parts for x in p["lat_ms"]],
            "last": max(p["last"] for p in parts),
        }

    def stop(self) -> None:
        for pipe in self.pipes:
            with suppress(BrokenPipeError, OSError):
                pipe.send(("stop",))
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        for pipe in self.pipes:
            pipe.close()


# -- the run ---------------------------------------------------------------------------------------


async def throughput_phase(workers: Workers, meter: Meter, group: str, mode: str, seconds: float) -> dict[str, Any]:
    start_at = time.monotonic() + 0.3
    end_at = start_at + seconds
    results: dict[str, Any] = {}

    async def drive() -> None:
        results.update(await workers.run(group, mode, start_at, end_at))

    async with anyio.create_task_group() as tg:
        tg.start_soon(drive)
        await anyio.sleep(max(0.0, start_at - time.monotonic()))
        before = await meter.snapshot()
    after = await meter.snapshot()
    if results["ok"] == 0:
        raise RuntimeError(f"{group}/{mode}: no append succeeded: {results['error_samples']}")
    elapsed = results["last"] - start_at
    cpu = cpu_between(before, after)
    return {
        "replicas": group,
        "sessions": mode,
        "appends": results["ok"],
        "errors": results["errors"],
        "error_samples": results["error_samples"],
        "seconds": round(elapsed, 3),
        "appends_per_s": round(results["ok"] / elapsed, 1),
        "latency": summarise(results["lat_ms"]) if results["lat_ms"] else None,
        **cpu,
    }


async def latency_phase(s: Client, a: Client, meter: Meter, plan: Plan) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    targets = [("sqlite", s, "lat-sqlite"), ("postgresql", a, "lat-pg")]
    rng = random.Random(11)
    before = None
    for round_ in range(plan.latency_warmup + plan.latency_calls):
        if round_ == plan.latency_warmup:
            before = await meter.snapshot()
        rng.shuffle(targets)
        for name, client, key in targets:
            args = {"session_key": key, "context_type": "message", "content": CONTENT, "metadata": META}
            started = time.perf_counter()
            with anyio.fail_after(CALL_DEADLINE):
                _checked(await client.call_tool("update_context", args), f"update_context on {name}")
            if round_ >= plan.latency_warmup:
                samples[name].append((time.perf_counter() - started) * 1000)
    after = await meter.snapshot()
    assert before is not None
    out = {name: summarise(values) for name, values in samples.items()}
    for key in ("p50_ms", "p99_ms"):
        out[f"{key.removesuffix('_ms')}_pg_over_sqlite"] = round(out["postgresql"][key] / out["sqlite"][key], 3)
    out.update(cpu_between(before, after))
    return out


async def check_same_session(pg: asyncpg.Connection, schema: str, expected: int) -> dict[str, Any]:
    row = await pg.fetchrow(
        f"SELECT count(*) AS n, count(DISTINCT e.sequence_number) AS d, min(e.sequence_number) AS lo, "
        f'max(e.sequence_number) AS hi, max(s.entry_count) AS counter FROM "{schema}".context_entries e '
        f'JOIN "{schema}".sessions s ON s.id = e.session_id WHERE s.session_key = $1',
        "same",
    )
    ok = row["n"] == row["d"] == row["hi"] == row["counter"] == expected and row["lo"] == 1
    return {"acknowledged": expected, **dict(row), "gap_free": ok}


async def sessions_table_stats(pg: asyncpg.Connection, schema: str) -> dict[str, Any]:
    """How the per-append UPDATE of the session row lands: HOT or not, and what it costs in size."""
    await pg.execute("SELECT pg_stat_clear_snapshot()")
    row = await pg.fetchrow(
        "SELECT n_tup_upd, n_tup_hot_upd, n_dead_tup, pg_relation_size(relid) AS heap, "
        "pg_indexes_size(relid) AS indexes, coalesce(pg_relation_size(c.reltoastrelid), 0) AS toast "
        "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
        "WHERE s.schemaname = $1 AND s.relname = 'sessions'",
        schema,
    )
    return dict(row) if row else {}


def aggregate(phases: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for group, mode in PHASES:
        runs = [p for p in phases if p["replicas"] == group and p["sessions"] == mode]
        appends = sum(p["appends"] for p in runs)
        seconds = sum(p["seconds"] for p in runs)
        cpu: dict[str, float] = {}
        for p in runs:
            for k, v in p["cpu_seconds"].items():
                cpu[k] = cpu.get(k, 0.0) + v
        wall = sum(p["wall_seconds"] for p in runs)
        out[f"{group}/{mode}"] = {
            "appends": appends,
            "errors": sum(p["errors"] for p in runs),
            "appends_per_s": round(appends / seconds, 1),
            "per_round_appends_per_s": [p["appends_per_s"] for p in runs],
            "p50_ms_median": round(statistics.median(p["latency"]["p50_ms"] for p in runs), 2),
            "p99_ms_median": round(statistics.median(p["latency"]["p99_ms"] for p in runs), 2),
            "cpu_ms_per_append": {k: round(v * 1000 / appends, 3) for k, v in sorted(cpu.items())},
            "cpu_cores_busy": {k: round(v / wall, 2) for k, v in sorted(cpu.items())},
            "new_pg_connections_per_s": round(sum(p["new_pg_connections"] for p in runs) / wall, 1),
        }
    return out


def report(agg: dict[str, Any], latency: dict[str, Any], check: dict[str, Any]) -> list[dict[str, Any]]:
    print(f"\n{'phase':<11}{'appends/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'err':>5}   CPU ms per append (cores busy)")
    for name, r in agg.items():
        cpu = r["cpu_ms_per_append"]
        busy = r["cpu_cores_busy"]
        parts = [f"{k}={cpu[k]:.2f}({busy[k]:.2f})" for k in cpu if k != "sqlite" and (cpu[k] > 0.005 or k == "B")]
        head = f"{name:<11}{r['appends_per_s']:>10.1f}{r['p50_ms_median']:>9.1f}{r['p99_ms_median']:>9.1f}"
        print(f"{head}{r['errors']:>5}   " + " ".join(parts))
        print(f"{'':<11}rounds: {r['per_round_appends_per_s']}; new PG connections/s: {r['new_pg_connections_per_s']}")
    same = agg["two/same"]["appends_per_s"] / agg["one/same"]["appends_per_s"]
    multi = agg["two/multi"]["appends_per_s"] / agg["one/multi"]["appends_per_s"]
    print(f"\ntwo/one replicas, same session: {same:.2f}x   32 sessions: {multi:.2f}x")
    print(
        f"\nsingle-client update_context: SQLite p50 {latency['sqlite']['p50_ms']:.2f} ms p99 "
        f"{latency['sqlite']['p99_ms']:.2f} ms | PostgreSQL p50 {latency['postgresql']['p50_ms']:.2f} ms p99 "
        f"{latency['postgresql']['p99_ms']:.2f} ms | PG/SQLite p50 {latency['p50_pg_over_sqlite']:.2f}x "
        f"p99 {latency['p99_pg_over_sqlite']:.2f}x"
    )
    lat_cpu = latency["cpu_seconds"]
    n = latency["postgresql"]["n"]
    per_call = {k: v * 1000 / n for k, v in lat_cpu.items()}
    print(
        f"  CPU ms per call: S(sqlite)={per_call.get('S', 0):.2f} A(pg)={per_call.get('A', 0):.2f} "
        f"postgres_all={per_call['postgres_all']:.2f} bench(client, both calls)={per_call['bench']:.2f}"
    )
    print(
        f"\nsame-session sequence check: {check['n']} rows, {check['d']} distinct, {check['lo']}..{check['hi']}, "
        f"counter {check['counter']}, acknowledged {check['acknowledged']}: "
        + ("gap-free" if check["gap_free"] else "BROKEN")
    )
    t = check.get("sessions_table", {})
    if t:
        print(
            f"sessions table (34 rows) after the run: {t['n_tup_upd']:,} updates, {t['n_tup_hot_upd']:,} HOT; "
            f"heap {t['heap']:,} B, indexes {t['indexes']:,} B, toast {t['toast']:,} B"
        )
    verdicts = []
    for label, ratio in (("same session", same), ("32 sessions", multi)):
        passed = ratio >= 1.0
        verdicts.append(
            {"goal": f"two replicas not slower than one ({label})", "ratio": round(ratio, 3), "pass": passed}
        )
        print(f"{'PASS' if passed else 'MISS'}  two replicas must not be slower than one ({label}): {ratio:.2f}x")
    return verdicts


async def run(plan: Plan, args: argparse.Namespace) -> None:
    schema = f"bench_storage_{uuid.uuid4().hex[:8]}"
    pg_dsn = args.pg_url
    workdir = Path(tempfile.mkdtemp(prefix="handoff-bench-storage-"))
    sqlite_url = f"sqlite:///{workdir / 'bench.db'}"
    env = {"HANDOFF_LOG_LEVEL": args.log_level}
    pg_env = {**env, "HANDOFF_DB__SCHEMA_NAME": schema}
    if args.pool_size:
        pg_env["HANDOFF_DB__POOL_SIZE"] = str(args.pool_size)
    pg = await asyncpg.connect(pg_dsn)
    workers: Workers | None = None
    try:
        with ExitStack() as servers:
            print(f"starting replicas A, B on PostgreSQL (schema {schema}) and S on SQLite ...", flush=True)
            a = servers.enter_context(http_server(pg_dsn, timeout=60, **pg_env))
            b = servers.enter_context(http_server(pg_dsn, timeout=60, **pg_env))
            s = servers.enter_context(http_server(sqlite_url, timeout=60, **env))
            procs = {"A": a.process.pid, "B": b.process.pid, "S": s.process.pid}
            async with Client(a.url) as ca, Client(s.url) as cs:
                for key in ["same", "lat-pg", *(f"multi-{g:02d}" for g in range(CLIENTS))]:
                    _checked(await ca.call_tool("register_session", {"session_key": key, "source_agent": "bench"}), key)
                _checked(
                    await cs.call_tool("register_session", {"session_key": "lat-sqlite", "source_agent": "bench"}), "s"
                )
                workers = Workers(args.client_procs, a.url, b.url)
                connections = await workers.ready()
                print(f"{connections} client connections in {args.client_procs} worker process(es)", flush=True)
                postmaster = _ppid(await pg.fetchval("SELECT pg_backend_pid()"))
                if postmaster is None:
                    raise SystemExit("cannot read /proc of the PostgreSQL backends: is the database on this machine?")
                meter = Meter(pg, postmaster, {**procs, **workers.pids})
                meter.replicas(A=procs["A"], B=procs["B"], S=procs["S"])
                load_before = os.getloadavg()
                idle_a = await meter.snapshot()
                await anyio.sleep(1.0)
                idle = cpu_between(idle_a, await meter.snapshot())
                for group, mode in PHASES:  # warm-up: pools, backends, caches; discarded
                    await throughput_phase(workers, meter, group, mode, plan.warmup_seconds)
                print(f"warm-up done; measuring {plan.rounds} round(s) x 4 phases x {plan.seconds}s ...", flush=True)
                phases = []
                rng = random.Random(5)
                for round_ in range(plan.rounds):
                    order = list(PHASES)
                    rng.shuffle(order)
                    for group, mode in order:
                        result = await throughput_phase(workers, meter, group, mode, plan.seconds)
                        result["round"] = round_
                        phases.append(result)
                        print(
                            f"  round {round_} {group}/{mode}: {result['appends_per_s']:.0f} appends/s, "
                            f"{result['errors']} errors",
                            flush=True,
                        )
                print("measuring single-client latency (SQLite vs PostgreSQL) ...", flush=True)
                latency = await latency_phase(cs, ca, meter, plan)
                load_after = os.getloadavg()
                same_total = await pg.fetchval(
                    f'SELECT entry_count FROM "{schema}".sessions WHERE session_key = $1', "same"
                )
                warm_same = int(same_total) - sum(p["appends"] for p in phases if p["sessions"] == "same")
            check = await check_same_session(pg, schema, int(same_total))
            check["sessions_table"] = await sessions_table_stats(pg, schema)
            check["warmup_appends"] = warm_same
            check["acknowledged_measured"] = sum(p["appends"] for p in phases if p["sessions"] == "same")
            workers.stop()
            workers = None
    finally:
        if workers is not None:
            workers.stop()
        await pg.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await pg.close()
    agg = aggregate(phases)
    verdicts = report(agg, latency, check)
    payload = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "plan": plan.__dict__,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
        },
        "server_log_level": args.log_level,
        "client_procs": args.client_procs,
        "pool_size": args.pool_size,
        "idle_1s_cpu": idle,
        "throughput": agg,
        "throughput_phases": [dict(p.items()) for p in phases],
        "latency": latency,
        "same_session_check": check,
        "goals": verdicts,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nresults written to {args.out}")
    if not check["gap_free"]:
        raise SystemExit("same-session sequence numbers are not gap-free: the benchmark's data is wrong")


# -- --explain: the query plans of every repository query on a realistic schema -------------------


async def fill_for_explain(dsn: str, schema: str, rng: random.Random) -> dict[str, Any]:
    """200 sessions; one ("big") with 20,000 entries incl. 40 of 64 KiB-1 MiB; the others 25 each."""
    import hashlib

    from bench_core import entry_for

    from handoff.domain.digest import Digest
    from handoff.domain.models import ContextType

    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        now = datetime.now(UTC)
        statuses = ["active"] * 150 + ["dormant"] * 20 + ["completed"] * 15 + ["expired"] * 10 + ["archived"] * 5
        agents = [f"agent-{i:02d}" for i in range(20)]
        sessions, participants, entries, handoffs, events = [], [], [], [], []
        for sid in range(1, 201):
            key = "big" if sid == 1 else f"s-{sid:03d}"
            owner = agents[sid % len(agents)]
            n = 20_000 if sid == 1 else 25
            digest = Digest()
            total = 0
            for seq in range(1, n + 1):
                kind, content, meta = entry_for(rng, seq)
                if sid == 1 and seq % 500 == 250:  # 40 large file reads, 64 KiB - 1 MiB of prose
                    kind, meta = "file", {"path": f"docs/big_{seq}.md", "action": "read"}
                    content = _text(rng, rng.randint(64 * 1024, 1024 * 1024))
                agent = owner if seq % 5 else agents[(sid + 1) % len(agents)]
                digest.absorb(seq=seq, context_type=ContextType(kind), content=content, metadata=meta, agent=agent)
                encoded = content.encode()
                total += len(encoded)
                idem = f"idem-{sid}-{seq}" if seq % 3 == 0 else None
                entries.append(
                    (
                        sid,
                        seq,
                        kind,
                        agent,
                        json.dumps(meta),
                        len(encoded),
                        hashlib.sha256(encoded).hexdigest(),
                        idem,
                        now - timedelta(seconds=n - seq),
                        content,
                    )
                )
            status = statuses[sid % len(statuses)] if sid > 1 else "active"
            sessions.append(
                (
                    sid,
                    key,
                    owner,
                    owner,
                    status,
                    json.dumps({"project": f"p{sid % 7}"}),
                    604800,
                    n,
                    total,
                    now,
                    now,
                    now - timedelta(hours=sid),
                    now + timedelta(days=sid % 9),
                    digest.to_json(),
                    now,
                )
            )
            participants.append((sid, owner, "owner", now))
            participants += [(sid, agents[(sid + 3 + j) % len(agents)], "collaborator", now) for j in range(sid % 3)]
            target = agents[(sid + 7) % 20]

            def texts() -> tuple[str, str, str]:  # brief, summary, instructions
                return _text(rng, 3000), _text(rng, 300), _text(rng, 500)

            handoffs += [
                (
                    f"h-{sid:03d}-{h}",
                    sid,
                    owner,
                    target,
                    "context_transfer",
                    "pending",
                    "{}",
                    *texts(),
                    2000,
                    700,
                    n,
                    now,
                )
                for h in range(2 if sid % 2 else 1)
            ]
            steps = [(None, "active"), ("active", "dormant"), ("dormant", "active")]
            events += [(sid, before, after, "x", owner, "{}", now) for before, after in steps]
        await conn.execute("SET synchronous_commit = off")
        await conn.copy_records_to_table(
            "sessions",
            records=sessions,
            columns=[
                "id", "session_key", "source_agent", "owner_agent", "status", "meta", "ttl_seconds",
                "entry_count", "content_bytes", "created_at", "updated_at", "last_activity_at", "expires_at", "digest",
                "status_changed_at",
            ],
        )  # fmt: skip
        await conn.execute("SELECT setval(pg_get_serial_sequence('sessions', 'id'), 200)")
        await conn.copy_records_to_table(
            "session_participants", records=participants, columns=["session_id", "agent", "role", "joined_at"]
        )
        await conn.copy_records_to_table(
            "context_entries",
            records=entries,
            columns=[
                "session_id", "sequence_number", "context_type", "agent", "meta", "content_bytes",
                "content_sha256", "idempotency_key", "created_at", "content",
            ],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "handoffs",
            records=handoffs,
            columns=[
                "handoff_id", "session_id", "source_agent", "target_agent", "handoff_type", "status", "request_data",
                "brief", "summary", "instructions", "token_budget", "brief_tokens", "up_to_sequence", "created_at",
            ],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "lifecycle_events",
            records=events,
            columns=["session_id", "from_status", "to_status", "reason", "actor", "details", "created_at"],
        )
        await conn.execute("VACUUM ANALYZE")
        return {"sessions": len(sessions), "entries": len(entries), "participants": len(participants)}
    finally:
        await conn.close()


async def explain(dsn: str) -> None:
    from sqlalchemy import event

    from handoff.config import DatabaseSettings, normalise_database_url
    from handoff.domain.digest import Digest
    from handoff.domain.models import ContextType, Handoff, LifecycleEvent, NewEntry, SessionStatus
    from handoff.storage import migrate
    from handoff.storage.db import AsyncDb
    from handoff.storage.engine import create_engine
    from handoff.storage.maintenance import SqlMaintenanceRepository
    from handoff.storage.repositories import (
        SqlEntryRepository,
        SqlEventRepository,
        SqlHandoffRepository,
        SqlSessionRepository,
    )

    schema = f"bench_explain_{uuid.uuid4().hex[:8]}"
    engine = create_engine(normalise_database_url(dsn), DatabaseSettings(schema_name=schema))
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        captured.append((statement, parameters))

    try:
        await migrate.upgrade(engine, schema=schema)
        started = time.perf_counter()
        counts = await fill_for_explain(dsn, schema, random.Random(20240611))
        print(f"-- filled {counts} in {time.perf_counter() - started:.1f}s (schema {schema})\n")
        now = datetime.now(UTC)
        calls: list[tuple[str, Any]] = [
            (
                "session by key FOR UPDATE (append)",
                lambda r: r["s"].find("big", for_update=True, with_digest=True, with_participants=False),
            ),
            ("session by key + participants (get_session, page)", lambda r: r["s"].find("s-050", with_digest=True)),
            ("session by id", lambda r: r["s"].find_by_id(50)),
            ("idempotency lookup", lambda r: r["e"].find_by_idempotency_key(1, "idem-1-9999")),
            (
                "page: big session from the start, 50",
                lambda r: r["e"].list_page(1, after_sequence=0, up_to=20_000, limit=51, context_types=None),
            ),
            (
                "page: big session from the start, 50, again (warm)",
                lambda r: r["e"].list_page(1, after_sequence=0, up_to=20_000, limit=51, context_types=None),
            ),
            (
                "page: big session from the middle, 50",
                lambda r: r["e"].list_page(1, after_sequence=10_000, up_to=20_000, limit=51, context_types=None),
            ),
            (
                "page: big session, 50 incl. a 1 MiB-class entry",
                lambda r: r["e"].list_page(1, after_sequence=10_220, up_to=20_000, limit=51, context_types=None),
            ),
            (
                "page: big session, type=message",
                lambda r: r["e"].list_page(
                    1, after_sequence=5_000, up_to=20_000, limit=51, context_types=[ContextType.MESSAGE]
                ),
            ),
            (
                "page: big session, type=system (rare)",
                lambda r: r["e"].list_page(
                    1, after_sequence=0, up_to=20_000, limit=51, context_types=[ContextType.SYSTEM]
                ),
            ),
            (
                "page: big session, type in (file, tool_call)",
                lambda r: r["e"].list_page(
                    1, after_sequence=0, up_to=20_000, limit=51, context_types=[ContextType.FILE, ContextType.TOOL_CALL]
                ),
            ),
            (
                "page: small session",
                lambda r: r["e"].list_page(50, after_sequence=0, up_to=25, limit=51, context_types=None),
            ),
            (
                "list_sessions status=active",
                lambda r: r["s"].list_sessions(statuses=[SessionStatus.ACTIVE], agent=None, after_id=None, limit=51),
            ),
            (
                "list_sessions status=archived (rare)",
                lambda r: r["s"].list_sessions(statuses=[SessionStatus.ARCHIVED], agent=None, after_id=None, limit=51),
            ),
            (
                "list_sessions by agent",
                lambda r: r["s"].list_sessions(statuses=None, agent="agent-05", after_id=None, limit=51),
            ),
            (
                "list_sessions by agent + status, next page",
                lambda r: r["s"].list_sessions(
                    statuses=[SessionStatus.ACTIVE], agent="agent-05", after_id=20, limit=51
                ),
            ),
            ("list_sessions, all", lambda r: r["s"].list_sessions(statuses=None, agent=None, after_id=None, limit=51)),
            ("handoff by id", lambda r: r["h"].get("h-050-0")),
            ("handoffs of a session", lambda r: r["h"].list_for_session(51, limit=50)),
            ("lifecycle events of a session", lambda r: r["v"].list_for_session(50, limit=100)),
            (
                "job: due dormant (active by last_activity_at)",
                lambda r: r["m"].due_session_keys(
                    statuses=[SessionStatus.ACTIVE],
                    column="last_activity_at",
                    before=now - timedelta(hours=48),
                    limit=100,
                ),
            ),
            (
                "job: due expire (by expires_at)",
                lambda r: r["m"].due_session_keys(
                    statuses=[SessionStatus.ACTIVE, SessionStatus.DORMANT],
                    column="expires_at",
                    before=now + timedelta(days=1),
                    limit=100,
                ),
            ),
            (
                "job: due archive (completed/expired by status_changed_at, policy)",
                lambda r: r["m"].due_session_keys(
                    statuses=[SessionStatus.COMPLETED, SessionStatus.EXPIRED],
                    column="status_changed_at",
                    before=now,
                    limit=100,
                    policies=["standard"],
                ),
            ),
            ("job: pack entries of the big session", lambda r: r["m"].pack_entries(1, limit=200)),
            ("job: pack entries of the last session", lambda r: r["m"].pack_entries(200, limit=200)),
            ("job: delete entries of a session (purge)", lambda r: r["m"].delete_entries(50, limit=500)),
            ("job: delete orphans", lambda r: r["m"].delete_orphans()),
            ("job: sessions with wrong counters", lambda r: r["m"].sessions_with_wrong_counters(limit=100)),
            ("job: recent job runs", lambda r: r["m"].recent_job_runs(job=None, limit=20)),
        ]

        async def writes(r: dict[str, Any]) -> None:
            session = await r["s"].get("big", for_update=True, with_digest=True, with_participants=False)
            digest = session.digest or Digest()
            seq = await r["s"].record_append(session, added_bytes=200, now=now, expires_at=now, digest=digest)
            entry = NewEntry(ContextType.MESSAGE, "x" * 200, {"role": "user"}, "agent-01", 200, "0" * 64, "k-new")
            await r["e"].add(session.id, seq, entry, now=now)
            await r["s"].set_status(session, SessionStatus.DORMANT, now=now)
            await r["s"].touch(session, now=now, expires_at=now)
            await r["s"].set_participant(session, "agent-19", r["role"], now=now)
            await r["h"].add(
                Handoff(
                    "h-new",
                    session.id,
                    "big",
                    "agent-01",
                    "agent-02",
                    r["ht"],
                    r["hs"],
                    {},
                    "b",
                    "s",
                    "i",
                    2000,
                    10,
                    seq,
                    now,
                )
            )
            await r["v"].add(
                LifecycleEvent(session.id, SessionStatus.ACTIVE, SessionStatus.DORMANT, "idle", "sys", now, {})
            )

        from handoff.domain.models import HandoffStatus, HandoffType, ParticipantRole

        async with engine.connect() as conn:
            trans = await conn.begin()
            db = AsyncDb(conn)
            repos = {
                "s": SqlSessionRepository(db), "e": SqlEntryRepository(db), "h": SqlHandoffRepository(db),
                "v": SqlEventRepository(db), "m": SqlMaintenanceRepository(db), "role": ParticipantRole.COLLABORATOR,
                "ht": HandoffType.CONTEXT_TRANSFER, "hs": HandoffStatus.PENDING,
            }  # fmt: skip
            statements: list[tuple[str, str, Any]] = []
            for label, call in calls:
                captured.clear()
                await call(repos)
                statements += [(label, sql, params) for sql, params in captured]
            captured.clear()
            await writes(repos)
            statements += [("write path", sql, params) for sql, params in captured]
            await trans.rollback()
            raw = await conn.get_raw_connection()
            apg = raw.driver_connection
            assert apg is not None
            seen = set()
            for label, sql, params in statements:
                if (label, sql) in seen:  # a job's batch loop repeats its UPDATE: one plan is enough
                    continue
                seen.add((label, sql))
                if label.startswith("page:"):  # EXPLAIN sends no rows, so it never detoasts: make it
                    sql = f"SELECT count(*), sum(length(p.content)) FROM ({sql}) AS p"
                tx = apg.transaction()
                await tx.start()
                try:  # EXPLAIN ANALYZE runs the statement: writes are rolled back
                    rows = await apg.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", *(params or ()))
                finally:
                    await tx.rollback()
                print(f"### {label}\n```sql\n{' '.join(sql.split())}\n```\n```")
                print("\n".join(r[0] for r in rows))
                print("```\n")
        await toast_report(dsn, schema)
    finally:
        await engine.dispose()
        pg = await asyncpg.connect(dsn)
        await pg.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await pg.close()


async def toast_report(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        print("### storage sizes")
        rows = await conn.fetch(
            "SELECT c.relname, pg_relation_size(c.oid) AS heap, "
            "coalesce(pg_relation_size(c.reltoastrelid), 0) AS toast, pg_indexes_size(c.oid) AS indexes, "
            "pg_total_relation_size(c.oid) AS total FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY total DESC",
            schema,
        )
        for r in rows:
            sizes = f"heap {r['heap']:>11,}  toast {r['toast']:>11,}  indexes {r['indexes']:>9,}"
            print(f"  {r['relname']:<22} {sizes}  total {r['total']:>11,}")
        widths = await conn.fetch(
            "SELECT tablename, attname, avg_width FROM pg_stats WHERE schemaname = $1 "
            "AND attname IN ('content', 'digest', 'meta', 'brief') ORDER BY tablename, attname",
            schema,
        )
        print(
            "  pg_stats avg_width (stored datum: a TOAST pointer is 18 B): "
            + ", ".join(f"{w['tablename']}.{w['attname']}={w['avg_width']}" for w in widths)
        )
        r = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE octet_length(content) < 2000) AS small, "
            "count(*) FILTER (WHERE octet_length(content) >= 64 * 1024) AS large, "
            "sum(octet_length(content)) FILTER (WHERE octet_length(content) >= 64 * 1024) AS large_raw, "
            "sum(pg_column_size(content)) FILTER (WHERE octet_length(content) >= 64 * 1024) AS large_stored "
            "FROM context_entries"
        )
        large = f"{r['large']:,} ({r['large_raw']:,} B raw, {r['large_stored']:,} B stored)"
        print(f"  entries < 2000 B: {r['small']:,}; >= 64 KiB: {large}")
        per_page = await conn.fetchval("SELECT reltuples / relpages FROM pg_class WHERE relname = 'context_entries'")
        print(f"  rows per heap page: {per_page:.1f}")
        print(f"  default_toast_compression: {await conn.fetchval('SHOW default_toast_compression')}")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smoke run for CI (< 60 s)")
    parser.add_argument("--seconds", type=float, help="seconds per throughput phase")
    parser.add_argument("--rounds", type=int, help="rounds of the four throughput phases")
    parser.add_argument("--latency-calls", type=int, help="measured calls per backend in the latency phase")
    parser.add_argument("--pg-url", default=os.environ.get("HANDOFF_TEST_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--client-procs", type=int, default=2, help="worker processes holding the 32 clients")
    parser.add_argument("--pool-size", type=int, help="HANDOFF_DB__POOL_SIZE for the PostgreSQL replicas")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN (ANALYZE, BUFFERS) of every query")
    args = parser.parse_args()
    if args.explain:
        anyio.run(explain, args.pg_url)
        return
    plan = QUICK if args.quick else FULL
    plan = Plan(
        rounds=args.rounds or plan.rounds,
        seconds=args.seconds or plan.seconds,
        warmup_seconds=plan.warmup_seconds,
        latency_calls=args.latency_calls or plan.latency_calls,
        latency_warmup=plan.latency_warmup,
    )
    if not 1 <= args.client_procs <= CLIENTS:
        parser.error(f"--client-procs must be 1..{CLIENTS}")
    anyio.run(run, plan, args)


if __name__ == "__main__":
    main()
