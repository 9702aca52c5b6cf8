"""Scale: the request path on a database of 1,000,000 entries / 10,000 sessions vs an empty one.

One run per backend (SQLite file in a temp dir; PostgreSQL in a database of its own, created and
dropped here), in the same process so machine noise hits both sides alike:

1. empty   Migrate with the real migrations, bulk-load one large session ("probe-big", with the
           digest the append path would have built), start `handoff serve --transport http` and
           time, in a shuffled interleaving: update_context appends (200 B) to a fresh session,
           request_handoff (token_budget 2000) on probe-big, get_context pages at random cursors
           of probe-big. Server RSS from /proc/<pid>/status.
2. loaded  Stop the server; bulk-load by SQL the rest of --entries over --sessions sessions, plus
           --purge small archived sessions whose retention deadline passed 10 days ago. A fresh
           server, the same calls (plus pages of random loaded sessions), RSS again.
3. purge   Appends back to back with nothing else running (quiet), then the same while
           `handoff jobs run purge` deletes the --purge sessions in a separate process. Counts
           before and after prove it deleted what was due.

Data is written straight into the schema (COPY on PostgreSQL, executemany on SQLite): rows as the
services write them (counter, digest, participants, lifecycle events; archived content packed).
After a load the database is settled (SQLite: fsync; PostgreSQL: VACUUM ANALYZE, CHECKPOINT), as a
database that grew over weeks would be. The servers run with lifecycle jobs off, so only the purge
we start deletes anything.

Usage: .venv/bin/python bench/bench_scale.py [--backend sqlite|postgres|both] [--quick]
       [--entries N] [--sessions M] [--purge K] [--pg-url URL]
Prints one JSON line per backend and PASS/MISS per goal; exits non-zero only when the benchmark
itself cannot run (or the purge did not delete what it should).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
from mcp.client import Client

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench_core import _checked, _text, entry_for, summarise  # noqa: E402
from tests.e2e.servers import HANDOFF, http_server, server_env  # noqa: E402

from handoff.config import Settings  # noqa: E402
from handoff.container import Container  # noqa: E402
from handoff.domain.digest import Digest  # noqa: E402
from handoff.domain.models import ContextType  # noqa: E402
from handoff.logs import configure_logging  # noqa: E402
from handoff.services.paging import encode_cursor  # noqa: E402
from handoff.storage.packing import pack_content  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
BIG_KEY = "probe-big"
BIG_OWNER = "agent-00"
CONTENT = _text(random.Random(3), 200)
POOL = 4096  # distinct entries the loader cycles through
TEMPLATES = 16  # sessions of one size share one of 16 histories, so their digests are exact
SERVER_ENV = {"HANDOFF_LIFECYCLE__JOBS_ENABLED": "false"}
MB = 1024 * 1024
OLD = "session_key LIKE 'old-%'"  # the archived sessions loaded for the purge


@dataclass(frozen=True)
class Plan:
    entries: int
    sessions: int
    purge: int
    purge_entries: int  # entries in each purged session
    big: int  # entries in probe-big (part of --entries)
    appends: int
    pages: int
    handoffs: int
    warmup: int
    purge_seconds: float  # cap on the purge window


FULL = Plan(1_000_000, 10_000, 100_000, 2, 20_000, 2000, 500, 200, 50, 1200.0)
QUICK = Plan(20_000, 200, 2_000, 2, 2_000, 100, 40, 20, 5, 60.0)


# -- data -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolEntry:
    kind: str
    content: str
    meta: dict[str, Any]
    meta_json: str
    size: int
    sha: str


def make_pool() -> list[PoolEntry]:
    rng = random.Random(20240611)
    pool = []
    for i in range(POOL):
        kind, content, meta = entry_for(rng, i)
        raw = content.encode()
        pool.append(PoolEntry(kind, content, meta, json.dumps(meta), len(raw), hashlib.sha256(raw).hexdigest()))
    return pool


class History:
    """Which pool entry is entry `seq` of template `t`, and the digest of its first n entries."""

    def __init__(self, pool: list[PoolEntry]) -> None:
        self.pool = pool
        self._digests: dict[tuple[int, int], tuple[str, int]] = {}

    def entry(self, template: int, seq: int) -> PoolEntry:
        return self.pool[(template * 257 + seq) % POOL]

    def digest(self, template: int, n: int, agent: str) -> tuple[str, int]:
        """(digest JSON, content bytes) after n appends, as the append path folds them."""
        if (template, n) not in self._digests:
            digest, total = Digest(), 0
            for seq in range(1, n + 1):
                e = self.entry(template, seq)
                digest.absorb(
                    seq=seq, context_type=ContextType(e.kind), content=e.content, metadata=e.meta, agent=agent
                )
                total += e.size
            self._digests[(template, n)] = (digest.to_json(), total)
        return self._digests[(template, n)]


@dataclass(frozen=True)
class SessionSpec:
    key: str
    owner: str
    template: int
    n: int
    archived: bool


def fixture_specs(plan: Plan) -> list[SessionSpec]:
    return [SessionSpec(BIG_KEY, BIG_OWNER, 0, plan.big, False)]


def bulk_specs(plan: Plan) -> list[SessionSpec]:
    """The rest of --entries over --sessions - 1 sessions, then the --purge archived ones."""
    regular = plan.sessions - 1
    each, extra = divmod(plan.entries - plan.big, regular)
    specs = []
    for i in range(regular):
        t = i % TEMPLATES
        specs.append(SessionSpec(f"scale-{i:06d}", f"agent-{t:02d}", t, each + (i < extra), False))
    for i in range(plan.purge):
        t = i % TEMPLATES
        specs.append(SessionSpec(f"old-{i:07d}", f"agent-{t:02d}", t, plan.purge_entries, True))
    return specs


def rows(specs: list[SessionSpec], first_id: int, history: History, now: datetime, ts: Any) -> Iterator[Any]:
    """("session"|"participant"|"event"|"entry", tuple) rows; `ts` renders a timestamp per backend."""
    for offset, spec in enumerate(specs):
        sid = first_id + offset
        digest, total = history.digest(spec.template, spec.n, spec.owner)
        if spec.archived:  # stopped 110 days ago: expired 103, archived 100 days ago (standard: purge at 90)
            created, active, changed = now - timedelta(days=120), now - timedelta(days=110), now - timedelta(days=100)
            status, expires = "archived", active + timedelta(days=7)
        else:
            created = now - timedelta(days=2, seconds=offset)
            active = now - timedelta(seconds=offset % 3000)
            status, changed, expires = "active", created, active + timedelta(days=7)
        yield "session", (
            sid, spec.key, spec.owner, spec.owner, status, json.dumps({"project": f"p{spec.template}"}), 604800,
            spec.n, total, ts(created), ts(active), ts(active), ts(expires), digest, "standard", ts(changed),
        )  # fmt: skip
        yield "participant", (sid, spec.owner, "owner", ts(created))
        yield "event", (sid, None, "active", "registered", spec.owner, "{}", ts(created))
        if spec.archived:
            yield "event", (sid, "active", "expired", "ttl elapsed", "job:expire", "{}", ts(expires))
            yield "event", (sid, "expired", "archived", "standard retention", "job:archive", "{}", ts(changed))
        span = (active - created) / max(spec.n, 1)
        for seq in range(1, spec.n + 1):
            e = history.entry(spec.template, seq)
            at = ts(created + span * seq)
            if spec.archived:
                content, codec, packed = "", "zlib", pack_content(e.content)
            else:
                content, codec, packed = e.content, "plain", None
            idem = f"idem-{sid}-{seq}" if seq % 3 == 0 else None
            yield "entry", (sid, seq, e.kind, spec.owner, e.meta_json, e.size, e.sha, idem, at, content, codec, packed)


COLUMNS = {
    "session": (
        "sessions",
        "id session_key source_agent owner_agent status meta ttl_seconds entry_count content_bytes created_at "
        "updated_at last_activity_at expires_at digest retention_policy status_changed_at",
    ),
    "participant": ("session_participants", "session_id agent role joined_at"),
    "event": ("lifecycle_events", "session_id from_status to_status reason actor details created_at"),
    "entry": (
        "context_entries",
        "session_id sequence_number context_type agent meta content_bytes content_sha256 idempotency_key "
        "created_at content content_codec content_packed",
    ),
}


def _sqlite_ts(value: datetime) -> str:
    # How SQLAlchemy's SQLite DateTime stores a UTC timestamp (naive, microseconds always written).
    return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def load_sqlite(path: Path, specs: list[SessionSpec], history: History) -> dict[str, int]:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=DELETE")  # no server is running: one big load, no WAL copy
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-262144")
        con.execute("PRAGMA foreign_keys=ON")
        first_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM sessions").fetchone()[0]
        con.execute("BEGIN")
        counts = dict.fromkeys(COLUMNS, 0)
        for kind, batch in batched(rows(specs, first_id, history, datetime.now(UTC), _sqlite_ts), 20_000):
            con.executemany(_insert_sql(kind), batch)
            counts[kind] += len(batch)
        con.execute("COMMIT")
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()
    fd = os.open(path, os.O_RDONLY)  # settle: written with synchronous=OFF, so flush it now
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return counts


def _insert_sql(kind: str) -> str:
    table, columns = COLUMNS[kind]
    names = columns.split()
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def batched(source: Iterator[Any], size: int) -> Iterator[tuple[str, list[Any]]]:
    """Rows grouped by table, parents flushed before children so foreign keys hold at every batch."""
    batches: dict[str, list[Any]] = {kind: [] for kind in COLUMNS}
    for kind, row in source:
        batches[kind].append(row)
        if len(batches[kind]) >= size:
            for k in COLUMNS:
                if batches[k]:
                    yield k, batches[k]
                    batches[k] = []
    for k in COLUMNS:
        if batches[k]:
            yield k, batches[k]


async def load_postgres(dsn: str, specs: list[SessionSpec], history: History) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET synchronous_commit = off")
        first_id = await conn.fetchval("SELECT coalesce(max(id), 0) + 1 FROM sessions")
        counts = dict.fromkeys(COLUMNS, 0)
        async with conn.transaction():
            for kind, batch in batched(rows(specs, first_id, history, datetime.now(UTC), lambda v: v), 20_000):
                table, columns = COLUMNS[kind]
                await conn.copy_records_to_table(table, records=batch, columns=columns.split())
                counts[kind] += len(batch)
        for table in ("sessions", "context_entries", "lifecycle_events"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        # Settle: what autovacuum and the checkpointer would long since have done to a database that
        # grew to this size, so the measured phase does not share the machine with them.
        await conn.execute("VACUUM (ANALYZE)")
        await conn.execute("CHECKPOINT")
        return counts
    finally:
        await conn.close()


# -- databases ------------------------------------------------------------------------------------


class Database:
    def __init__(self, backend: str, url: str, sqlite_path: Path | None = None) -> None:
        self.backend, self.url, self.sqlite_path = backend, url, sqlite_path

    async def migrate(self) -> None:
        container = Container.build(Settings(database_url=self.url))
        try:
            await container.migrate()
        finally:
            await container.close()

    async def load(self, specs: list[SessionSpec], history: History) -> dict[str, int]:
        if self.sqlite_path is not None:
            return await anyio.to_thread.run_sync(load_sqlite, self.sqlite_path, specs, history)
        return await load_postgres(self.url, specs, history)

    async def scalar(self, sql: str) -> int:
        if self.sqlite_path is not None:
            con = sqlite3.connect(self.sqlite_path)
            try:
                return int(con.execute(sql).fetchone()[0])
            finally:
                con.close()
        import asyncpg

        conn = await asyncpg.connect(self.url)
        try:
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()

    async def counts(self) -> dict[str, int]:
        return {
            "sessions": await self.scalar("SELECT count(*) FROM sessions"),
            "archived": await self.scalar("SELECT count(*) FROM sessions WHERE status = 'archived'"),
            "entries": await self.scalar("SELECT count(*) FROM context_entries"),
            "events": await self.scalar("SELECT count(*) FROM lifecycle_events"),
            "old_sessions": await self.scalar(f"SELECT count(*) FROM sessions WHERE {OLD}"),
            "old_entries": await self.scalar(
                f"SELECT count(*) FROM context_entries WHERE session_id IN (SELECT id FROM sessions WHERE {OLD})"
            ),
        }


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


# -- measuring ------------------------------------------------------------------------------------


def rss(pid: int) -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: round(int(fields[k].split()[0]) / 1024, 1) for k in ("VmRSS", "VmHWM")}


async def measure(client: Client, plan: Plan, append_key: str, loaded_keys: list[str]) -> dict[str, Any]:
    """Interleaved calls, shuffled; the first `warmup` of each kind are discarded."""
    rng = random.Random(7)
    _checked(await client.call_tool("register_session", {"session_key": append_key, "source_agent": "bench"}), "reg")
    last = plan.big - 50

    async def append() -> None:
        args = {"session_key": append_key, "context_type": "message", "content": CONTENT}
        _checked(await client.call_tool("update_context", {**args, "metadata": {"role": "assistant"}}), "append")

    async def handoff() -> None:
        args = {"session_key": BIG_KEY, "target_agent": "agent-b", "token_budget": 2000}
        out = _checked(await client.call_tool("request_handoff", args), "request_handoff")
        if not out["handoff"]["brief"]:
            raise RuntimeError("request_handoff returned an empty brief")

    async def page_at(key: str, after: int) -> None:
        args: dict[str, Any] = {"session_key": key, "limit": 50}
        if after:
            args["cursor"] = encode_cursor("c", after)
        out = _checked(await client.call_tool("get_context", args), "get_context")
        if not out["entries"]:
            raise RuntimeError(f"get_context on {key} after {after} returned no entries")

    async def page() -> None:
        await page_at(BIG_KEY, rng.randint(0, last))

    async def page_loaded() -> None:
        key = rng.choice(loaded_keys)
        await page_at(key, rng.choice([0, 0, 25, 50]))  # most sessions have ~100 entries

    kinds: dict[str, Any] = {"append": (append, plan.appends), "handoff": (handoff, plan.handoffs)}
    kinds["page"] = (page, plan.pages)
    if loaded_keys:
        kinds["page_loaded"] = (page_loaded, plan.pages)
    for call, _ in kinds.values():
        for _ in range(plan.warmup):
            await call()
    schedule = [name for name, (_, n) in kinds.items() for _ in range(n)]
    rng.shuffle(schedule)
    samples: dict[str, list[float]] = {name: [] for name in kinds}
    for name in schedule:
        started = time.perf_counter()
        with anyio.fail_after(60):
            await kinds[name][0]()
        samples[name].append((time.perf_counter() - started) * 1000)
    return {name: summarise(values) for name, values in samples.items()}


async def appends_while(client: Client, key: str, keep_going: Any, limit: int | None) -> list[float]:
    args = {"session_key": key, "context_type": "message", "content": CONTENT, "metadata": {"role": "user"}}
    samples: list[float] = []
    while keep_going() and (limit is None or len(samples) < limit):
        started = time.perf_counter()
        with anyio.fail_after(60):
            _checked(await client.call_tool("update_context", args), "append")
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def purge_phase(client: Client, db: Database, plan: Plan) -> dict[str, Any]:
    key = "probe-purge"
    _checked(await client.call_tool("register_session", {"session_key": key, "source_agent": "bench"}), "reg")
    await appends_while(client, key, lambda: True, plan.warmup)
    quiet = await appends_while(client, key, lambda: True, plan.appends)
    before = await db.counts()
    env = server_env(db.url, HANDOFF_LIFECYCLE__MAX_SESSIONS_PER_RUN=str(plan.purge + 1000))
    out_path = Path(tempfile.mkstemp(prefix="handoff-scale-purge-")[1])
    started = time.perf_counter()
    with out_path.open("w") as out:
        job = subprocess.Popen([HANDOFF, "jobs", "run", "purge"], stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + plan.purge_seconds
    try:
        during = await appends_while(client, key, lambda: job.poll() is None and time.monotonic() < deadline, None)
    finally:
        if job.poll() is None:
            job.terminate()
        job.wait(timeout=60)
    seconds = time.perf_counter() - started
    output = out_path.read_text(errors="replace")
    out_path.unlink()
    after = await db.counts()
    return {
        "quiet": summarise(quiet),
        "during": summarise(during) if during else None,
        "seconds": round(seconds, 1),
        "finished": job.returncode == 0 and time.monotonic() < deadline,
        "job_output": next((line for line in output.splitlines() if line.startswith("purge:")), output[-500:]),
        "before": before,
        "after": after,
        "sessions_deleted": before["old_sessions"] - after["old_sessions"],
        "entries_deleted": before["old_entries"] - after["old_entries"],
        "other_sessions_deleted": (before["sessions"] - before["old_sessions"])
        - (after["sessions"] - after["old_sessions"]),
    }


async def serve_and_measure(db: Database, plan: Plan, tag: str, loaded_keys: list[str]) -> dict[str, Any]:
    with http_server(db.url, timeout=120, **SERVER_ENV) as server, _log_tail_on_error(server.stderr_lines):
        async with Client(server.url) as client:
            start_rss = rss(server.process.pid)  # up and answering, before any tool call
            started = time.perf_counter()
            results = await measure(client, plan, f"probe-append-{tag}", loaded_keys)
            out: dict[str, Any] = {"calls": results, "seconds": round(time.perf_counter() - started, 1)}
            out["rss_mb"] = rss(server.process.pid)
            out["rss_mb_at_start"] = start_rss
            if tag == "loaded":
                out["purge"] = await purge_phase(client, db, plan)
                out["rss_mb_after_purge"] = rss(server.process.pid)
    return out


@contextmanager
def _log_tail_on_error(lines: list[str]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        print("".join(lines[-20:]), file=sys.stderr)  # a tool error names only a correlation id
        raise


# -- the run --------------------------------------------------------------------------------------


async def run_backend(backend: str, plan: Plan, pg_url: str, workdir: Path, history: History) -> dict[str, Any]:
    admin = None
    if backend == "sqlite":
        path = workdir / "scale.db"
        db = Database("sqlite", f"sqlite:///{path}", path)
    else:
        import asyncpg

        name = f"handoff_scale_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(pg_url)
        await admin.execute(f'CREATE DATABASE "{name}"')
        db = Database("postgres", _with_database(pg_url, name))
    try:
        await db.migrate()
        started = time.perf_counter()
        await db.load(fixture_specs(plan), history)
        print(f"[{backend}] probe-big ({plan.big:,} entries) in {time.perf_counter() - started:.1f}s", flush=True)
        empty = await serve_and_measure(db, plan, "empty", [])
        print(f"[{backend}] empty database measured in {empty['seconds']}s; bulk loading ...", flush=True)
        specs = bulk_specs(plan)
        started = time.perf_counter()
        loaded_rows = await db.load(specs, history)
        load_seconds = time.perf_counter() - started
        counts = await db.counts()
        print(f"[{backend}] loaded {loaded_rows} in {load_seconds:.1f}s; totals {counts}", flush=True)
        keys = [s.key for s in specs if not s.archived]
        loaded = await serve_and_measure(db, plan, "loaded", keys)
        size = await _size(db)
    finally:
        if admin is not None:
            await admin.execute(f'DROP DATABASE IF EXISTS "{db.url.rsplit("/", 1)[1]}" WITH (FORCE)')
            await admin.close()
    return {
        "backend": backend,
        "plan": asdict(plan),
        "load_seconds": round(load_seconds, 1),
        "loaded_counts": counts,
        "database_mb": size,
        "empty": empty,
        "loaded": loaded,
    }


async def _size(db: Database) -> float:
    if db.sqlite_path is not None:
        return round(db.sqlite_path.stat().st_size / MB, 1)
    return round(await db.scalar("SELECT pg_database_size(current_database())") / MB, 1)


def verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    empty, loaded = result["empty"]["calls"], result["loaded"]["calls"]
    purge = result["loaded"]["purge"]
    counts = result["loaded_counts"]
    live = (counts["entries"] - counts["old_entries"], counts["sessions"] - counts["old_sessions"])
    scale = f"{live[0]:,} entries / {live[1]:,} sessions (+{counts['old_sessions']:,} archived)"
    goals = [
        (f"append p99 at {scale} <= 1.5x empty", loaded["append"]["p99_ms"] / empty["append"]["p99_ms"], 1.5, "x"),
        (f"server RSS at {scale} <= 150 MB", result["loaded"]["rss_mb"]["VmRSS"], 150.0, " MB"),
    ]
    if purge["during"] is not None:
        label = f"append p99 during a {purge['sessions_deleted']:,}-session purge <= 2x without"
        goals.append((label, purge["during"]["p99_ms"] / purge["quiet"]["p99_ms"], 2.0, "x"))
    out = []
    for name, value, limit, unit in goals:
        out.append({"goal": name, "value": round(value, 3), "limit": limit, "pass": value <= limit})
        print(f"{'PASS' if value <= limit else 'MISS'}  [{result['backend']}] {name}: {value:.2f}{unit}")
    return out


def ratios(result: dict[str, Any]) -> dict[str, float]:
    empty, loaded = result["empty"]["calls"], result["loaded"]["calls"]
    out = {}
    for kind in ("append", "handoff", "page"):
        for q in ("p50", "p99"):
            out[f"{kind}_{q}"] = round(loaded[kind][f"{q}_ms"] / empty[kind][f"{q}_ms"], 3)
            out[f"{kind}_{q}_delta_ms"] = round(loaded[kind][f"{q}_ms"] - empty[kind][f"{q}_ms"], 3)
    for q in ("p50", "p99"):
        out[f"page_loaded_{q}_vs_empty_page"] = round(loaded["page_loaded"][f"{q}_ms"] / empty["page"][f"{q}_ms"], 3)
    purge = result["loaded"]["purge"]
    if purge["during"] is not None:
        for q in ("p50", "p99"):
            out[f"append_{q}_purge_vs_quiet"] = round(purge["during"][f"{q}_ms"] / purge["quiet"][f"{q}_ms"], 3)
    return out


async def main_async(args: argparse.Namespace, plan: Plan) -> int:
    configure_logging("WARNING")
    history = History(make_pool())
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    failed = False
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="handoff-scale-") as tmp:
            result = await run_backend(backend, plan, args.pg_url, Path(tmp), history)
        result["mode"] = "quick" if args.quick else "full"
        result["ratios_loaded_over_empty"] = ratios(result)
        result["load_avg"] = [round(x, 2) for x in os.getloadavg()]
        purge = result["loaded"]["purge"]
        expected = plan.purge
        purge["as_expected"] = (
            purge["finished"]
            and purge["sessions_deleted"] == expected
            and purge["after"]["old_sessions"] == 0
            and purge["after"]["old_entries"] == 0
            and purge["other_sessions_deleted"] == 0
            and purge["entries_deleted"] == expected * plan.purge_entries
        )
        result["goals"] = verdicts(result)
        print(json.dumps(result, separators=(",", ":")), flush=True)
        if not purge["as_expected"]:
            print(f"[{backend}] the purge did not delete the {expected:,} due sessions: {purge}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a CI smoke run (< 60 s per backend)")
    parser.add_argument("--entries", type=int, help="entries over the live sessions (incl. probe-big)")
    parser.add_argument("--sessions", type=int, help="live sessions (incl. probe-big)")
    parser.add_argument("--purge", type=int, help="archived sessions past their retention, purged while appending")
    parser.add_argument("--appends", type=int, help="measured appends per phase")
    parser.add_argument("--pg-url", default=os.environ.get("HANDOFF_TEST_POSTGRES_URL", DEFAULT_PG))
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = replace(
        plan,
        entries=args.entries or plan.entries,
        sessions=args.sessions or plan.sessions,
        purge=args.purge if args.purge is not None else plan.purge,
        appends=args.appends or plan.appends,
    )
    if plan.sessions < 2 or plan.entries < plan.big + plan.sessions - 1:
        parser.error(f"need at least 2 sessions and {plan.big:,} + one entry per other session")
    raise SystemExit(anyio.run(main_async, args, plan))


if __name__ == "__main__":
    main()
