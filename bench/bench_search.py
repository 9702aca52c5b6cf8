"""Search: search_context latency over 1,000,000 entries, and what the index adds to an append.

One run per backend (SQLite file in a temp dir; PostgreSQL in a database of its own, created and
dropped here):

1. Migrate to 0004 (no index yet) and bulk-load --entries entries over --sessions sessions by SQL
   (bench_scale's loader tables: COPY on PostgreSQL, executemany on SQLite). The text is distinct
   per entry: words drawn from a 40,000-word Zipf vocabulary, like prose and logs (a few words in
   most entries, most words in few). 5% of the sessions are archived: their content is packed.
2. Upgrade to head: migration 0008 builds the index from the loaded entries (archived ones
   unpacked). Timed: what an operator upgrading a database of this size waits for. Then settle it
   (SQLite fsync; PostgreSQL VACUUM ANALYZE, CHECKPOINT).
3. Search, in process through SearchService (the tool's whole work: parse, query, snippets), a
   shuffled mix: one word, two words, an exact phrase, a prefix (word*), one word within one
   session, and the next page of a one-word search (its cursor). Words come from the vocabulary's
   ranks 50..5,000 (what people search for: not "the", not a typo); phrases are word pairs that
   occur in the loaded text. p50/p99 per kind and over the mix.
4. Append: update_context's path (ContextService.append, durable commit as the server runs it)
   into a fresh session of the loaded database, with the index written and without (the same
   database, the index insert left out), interleaved in a shuffled order so drift hits both alike.
5. A sanity check: of three planted entries holding "quetzal marimba" apart, in reverse order and as
   the exact phrase, the phrase ranks first for the query `quetzal marimba`.

Usage: .venv/bin/python bench/bench_search.py [--backend sqlite|postgres|both] [--quick]
       [--entries N] [--sessions M] [--queries Q] [--appends A] [--pg-url URL]
Prints one JSON line per backend and PASS/MISS per goal (search p50 <= 20 ms, p99 <= 100 ms; append
p50 with the index <= 1.15x without); exits non-zero only when the benchmark cannot run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench_core import summarise  # noqa: E402
from bench_scale import COLUMNS, DEFAULT_PG, _insert_sql, _sqlite_ts, _with_database, batched  # noqa: E402

import handoff.storage.repositories as repositories  # noqa: E402
from handoff.config import Settings  # noqa: E402
from handoff.container import Container  # noqa: E402
from handoff.logs import configure_logging  # noqa: E402
from handoff.storage import migrate  # noqa: E402
from handoff.storage.db import Db  # noqa: E402
from handoff.storage.search import insert_entries  # noqa: E402
from handoff.storage.tables import context_entries  # noqa: E402

VOCABULARY = 40_000
QUERY_RANKS = (50, 5_000)
ARCHIVED_EVERY = 20  # every 20th session is archived (content packed)
KINDS = ("message", "tool_call", "file", "system")
GOALS = {"search_p50_ms": 20.0, "search_p99_ms": 100.0, "append_p50_ratio": 1.15}


@dataclass(frozen=True)
class Plan:
    entries: int
    sessions: int
    queries: int  # per query kind
    appends: int  # per side (with / without the index)
    warmup: int


FULL = Plan(1_000_000, 10_000, 200, 300, 20)
QUICK = Plan(50_000, 500, 40, 60, 5)


# -- text -----------------------------------------------------------------------------------------


class Corpus:
    """A Zipf vocabulary of pronounceable made-up words and a generator of entries' text."""

    def __init__(self, seed: int = 11) -> None:
        rng = random.Random(seed)
        syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]
        words: set[str] = set()
        while len(words) < VOCABULARY:
            words.add("".join(rng.choice(syllables) for _ in range(rng.choice((1, 2, 2, 3, 3, 4)))))
        self.words = sorted(words)
        rng.shuffle(self.words)  # rank = position: a word's frequency has nothing to do with its spelling
        self.rank = {w: r for r, w in enumerate(self.words)}
        weights = [1 / (rank + 1) ** 1.05 for rank in range(VOCABULARY)]
        self.cum = list(itertools.accumulate(weights))
        self.rng = rng

    def text(self, rng: random.Random, n_words: int) -> str:
        picks = rng.choices(self.words, cum_weights=self.cum, k=n_words)
        line = rng.randint(8, 16)
        return "\n".join(" ".join(picks[i : i + line]) for i in range(0, len(picks), line))

    def entry(self, rng: random.Random) -> tuple[str, str]:
        roll = rng.random()
        if roll < 0.45:
            return "message", self.text(rng, rng.randint(10, 160))
        if roll < 0.75:
            return "tool_call", "$ " + self.text(rng, rng.randint(20, 220))
        if roll < 0.97:
            return "file", f"src/{rng.choice(self.words)}/{rng.choice(self.words)}.py\n" + self.text(
                rng, rng.randint(20, 200)
            )
        return "system", self.text(rng, rng.randint(3, 12))

    def query_word(self, rng: random.Random) -> str:
        return self.words[rng.randint(*QUERY_RANKS)]


@dataclass
class Loaded:
    keys: list[str]
    phrases: list[str]  # word pairs that occur in the loaded text
    archived: int


def rows(plan: Plan, corpus: Corpus, ts: Any, loaded: Loaded) -> Iterator[tuple[str, tuple[Any, ...]]]:
    rng = random.Random(5)
    now = datetime.now(UTC)
    each, extra = divmod(plan.entries, plan.sessions)
    for sid in range(1, plan.sessions + 1):
        key, owner = f"search-{sid:06d}", f"agent-{sid % 16:02d}"
        n = each + (sid <= extra)
        archived = sid % ARCHIVED_EVERY == 0
        entries = [corpus.entry(rng) for _ in range(n)]
        total = sum(len(text.encode()) for _, text in entries)
        created = now - timedelta(days=30 if archived else 2, seconds=sid)
        status = "archived" if archived else "active"
        yield "session", (
            sid, key, owner, owner, status, "{}", 604800, n, total, ts(created), ts(created), ts(created),
            ts(created + timedelta(days=7)), "{}", "standard", ts(created),
        )  # fmt: skip
        yield "participant", (sid, owner, "owner", ts(created))
        yield "event", (sid, None, "active", "registered", owner, "{}", ts(created))
        loaded.keys.append(key)
        loaded.archived += archived
        for seq, (kind, text) in enumerate(entries, 1):
            raw = text.encode()
            content, codec, packed = ("", "zlib", zlib.compress(raw, 6)) if archived else (text, "plain", None)
            if len(loaded.phrases) < 4000 and rng.random() < 0.01:
                words = text.split()
                if len(words) > 3:
                    i = rng.randrange(len(words) - 1)
                    # As the word queries: at most one of the 50 commonest words (a "the refund", not "of the").
                    if max(corpus.rank.get(words[i], 0), corpus.rank.get(words[i + 1], 0)) >= QUERY_RANKS[0]:
                        loaded.phrases.append(f"{words[i]} {words[i + 1]}")
            yield "entry", (
                sid, seq, kind, owner, "{}", len(raw), "0" * 64, None, ts(created + timedelta(seconds=seq)),
                content, codec, packed,
            )  # fmt: skip


def load_sqlite(path: Path, plan: Plan, corpus: Corpus, loaded: Loaded) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=DELETE")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-262144")
        con.execute("BEGIN")
        for kind, batch in batched(rows(plan, corpus, _sqlite_ts, loaded), 20_000):
            con.executemany(_insert_sql(kind), batch)
        con.execute("COMMIT")
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


async def load_postgres(dsn: str, plan: Plan, corpus: Corpus, loaded: Loaded) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET synchronous_commit = off")
        async with conn.transaction():
            for kind, batch in batched(rows(plan, corpus, lambda v: v, loaded), 20_000):
                table, columns = COLUMNS[kind]
                await conn.copy_records_to_table(table, records=batch, columns=columns.split())
        for table in ("sessions", "context_entries", "lifecycle_events"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    finally:
        await conn.close()


async def settle(backend: str, url: str, path: Path | None) -> None:
    if backend == "sqlite":
        assert path is not None
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM (ANALYZE)")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def sizes(backend: str, url: str, path: Path | None) -> dict[str, float]:
    mb = 1024 * 1024
    if backend == "sqlite":
        assert path is not None
        con = sqlite3.connect(path)
        try:
            pages = dict(
                con.execute(
                    "SELECT CASE WHEN name LIKE 'context_search%' THEN 'index' ELSE 'rest' END, sum(pgsize) "
                    "FROM dbstat GROUP BY 1"
                ).fetchall()
            )
        except sqlite3.OperationalError:  # dbstat not compiled in
            pages = {"rest": path.stat().st_size}
        finally:
            con.close()
        return {"database_mb": round(sum(pages.values()) / mb, 1), "index_mb": round(pages.get("index", 0) / mb, 1)}
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        total = await conn.fetchval("SELECT pg_database_size(current_database())")
        index = await conn.fetchval("SELECT pg_total_relation_size('context_search')")
    finally:
        await conn.close()
    return {"database_mb": round(total / mb, 1), "index_mb": round(index / mb, 1)}


# -- measuring ------------------------------------------------------------------------------------


async def measure_search(container: Container, plan: Plan, corpus: Corpus, loaded: Loaded) -> dict[str, Any]:
    rng = random.Random(17)
    search = container.search.search
    live = [k for i, k in enumerate(loaded.keys, 1) if i % ARCHIVED_EVERY]
    counts: dict[str, list[int]] = {}

    def word() -> str:
        return corpus.query_word(rng)

    def prefix() -> str:
        """The first five letters of a longer word (as in refun*): a prefix several words share."""
        chosen = word()
        while len(chosen) < 7:
            chosen = word()
        return chosen[:5] + "*"

    async def run(kind: str, query: str, **kwargs: Any) -> None:
        page = await search(query, **kwargs)
        counts.setdefault(kind, []).append(len(page.results))

    calls = {
        "word": lambda: run("word", word()),
        "two_words": lambda: run("two_words", f"{word()} {word()}"),
        "phrase": lambda: run("phrase", f'"{rng.choice(loaded.phrases)}"'),
        "prefix": lambda: run("prefix", prefix()),
        "in_session": lambda: run("in_session", word(), session_key=rng.choice(live)),
    }
    samples: dict[str, list[float]] = {name: [] for name in calls}
    samples["page2"] = []
    for name in calls:
        for _ in range(plan.warmup):
            await calls[name]()
    counts.clear()
    schedule = [name for name in calls for _ in range(plan.queries)]
    rng.shuffle(schedule)
    for name in schedule:
        started = time.perf_counter()
        with anyio.fail_after(60):
            await calls[name]()
        samples[name].append((time.perf_counter() - started) * 1000)
    # The next page of a one-word search, timed on its own (the first page is not counted).
    for _ in range(plan.queries):
        query = word()
        first = await search(query, limit=20)
        if first.next_cursor is None:
            continue
        started = time.perf_counter()
        await search(query, limit=20, cursor=first.next_cursor)
        samples["page2"].append((time.perf_counter() - started) * 1000)
    mix = [v for name, values in samples.items() if name != "page2" for v in values]
    out: dict[str, Any] = {name: summarise(values) for name, values in samples.items() if values}
    out["mix"] = summarise(mix)
    out["results_per_query"] = {k: round(sum(v) / len(v), 1) for k, v in counts.items() if v}
    return out


async def _plain_insert(db: Db, rows: Any) -> None:
    """The append path without the index: the entry row alone (as before migration 0008)."""
    await db.execute(context_entries.insert(), list(rows))


async def measure_appends(container: Container, plan: Plan, corpus: Corpus) -> dict[str, Any]:
    rng = random.Random(23)
    key = f"probe-append-{uuid.uuid4().hex[:6]}"
    await container.sessions.register(key, "bench", {}, None)
    texts = [corpus.text(rng, rng.randint(30, 200)) for _ in range(64)]

    async def append(indexed: bool) -> float:
        repositories.insert_entries = insert_entries if indexed else _plain_insert  # type: ignore[assignment]
        content = rng.choice(texts)
        started = time.perf_counter()
        await container.context.append(key, "message", content, {"role": "assistant"}, None, None)
        return (time.perf_counter() - started) * 1000

    try:
        for _ in range(plan.warmup):
            await append(True)
            await append(False)
        schedule = [True] * plan.appends + [False] * plan.appends
        rng.shuffle(schedule)
        samples: dict[bool, list[float]] = {True: [], False: []}
        for indexed in schedule:
            samples[indexed].append(await append(indexed))
    finally:
        repositories.insert_entries = insert_entries
    with_index, without = summarise(samples[True]), summarise(samples[False])
    return {
        "with_index": with_index,
        "without_index": without,
        "p50_ratio": round(with_index["p50_ms"] / without["p50_ms"], 3),
        "p99_ratio": round(with_index["p99_ms"] / without["p99_ms"], 3),
    }


async def phrase_ranks_first(container: Container) -> bool:
    key = f"probe-rank-{uuid.uuid4().hex[:6]}"
    await container.sessions.register(key, "bench", {}, None)
    for text in (
        "quetzal notes first, and much later in the same entry the marimba",
        "marimba quetzal, the other way round",
        "we settled on the quetzal marimba design",
    ):
        await container.context.append(key, "message", text, {}, None, None)
    page = await container.search.search("quetzal marimba")
    return bool(page.results) and page.results[0].sequence_number == 3


# -- the run --------------------------------------------------------------------------------------


async def run_backend(backend: str, plan: Plan, pg_url: str, workdir: Path) -> dict[str, Any]:
    corpus = Corpus()
    loaded = Loaded([], [], 0)
    admin = None
    path: Path | None = None
    if backend == "sqlite":
        path = workdir / "search.db"
        url = f"sqlite:///{path}"
    else:
        import asyncpg

        name = f"handoff_search_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(pg_url)
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = _with_database(pg_url, name)
    settings = Settings(database_url=url)  # type: ignore[arg-type]
    try:
        container = Container.build(settings)
        try:
            await migrate.upgrade(container.engine, "0004")
        finally:
            await container.close()
        started = time.perf_counter()
        if path is not None:
            await anyio.to_thread.run_sync(load_sqlite, path, plan, corpus, loaded)
        else:
            await load_postgres(url, plan, corpus, loaded)
        load_seconds = time.perf_counter() - started
        print(f"[{backend}] loaded {plan.entries:,} entries in {load_seconds:.1f}s; migrating to head", flush=True)
        container = Container.build(settings)
        try:
            started = time.perf_counter()
            await migrate.upgrade(container.engine)
            index_seconds = time.perf_counter() - started
        finally:
            await container.close()
        print(f"[{backend}] migration 0008 indexed them in {index_seconds:.1f}s", flush=True)
        await settle(backend, url, path)
        space = await sizes(backend, url, path)
        async with Container.build(settings) as container:
            searches = await measure_search(container, plan, corpus, loaded)
            print(f"[{backend}] searched: mix {searches['mix']}", flush=True)
            appends = await measure_appends(container, plan, corpus)
            ranked = await phrase_ranks_first(container)
    finally:
        if admin is not None:
            await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
            await admin.close()
    return {
        "backend": backend,
        "plan": asdict(plan),
        "archived_sessions": loaded.archived,
        "load_seconds": round(load_seconds, 1),
        "migration_0008_seconds": round(index_seconds, 1),
        **space,
        "search": searches,
        "append": appends,
        "exact_phrase_ranks_first": ranked,
    }


def verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    scale = f"{result['plan']['entries']:,} entries"
    mix = result["search"]["mix"]
    goals = [
        (f"search p50 over {scale} <= 20 ms", mix["p50_ms"], GOALS["search_p50_ms"], " ms"),
        (f"search p99 over {scale} <= 100 ms", mix["p99_ms"], GOALS["search_p99_ms"], " ms"),
        ("append p50 with the index <= 1.15x without", result["append"]["p50_ratio"], GOALS["append_p50_ratio"], "x"),
    ]
    out = []
    for name, value, limit, unit in goals:
        out.append({"goal": name, "value": value, "limit": limit, "pass": value <= limit})
        print(f"{'PASS' if value <= limit else 'MISS'}  [{result['backend']}] {name}: {value:.2f}{unit}")
    ok = result["exact_phrase_ranks_first"]
    print(f"{'PASS' if ok else 'MISS'}  [{result['backend']}] the entry holding the exact phrase ranks first")
    out.append({"goal": "exact phrase ranks first", "pass": ok})
    return out


async def main_async(args: argparse.Namespace, plan: Plan) -> int:
    configure_logging("WARNING")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="handoff-search-") as tmp:
            result = await run_backend(backend, plan, args.pg_url, Path(tmp))
        result["mode"] = "quick" if args.quick else "full"
        result["load_avg"] = [round(x, 2) for x in os.getloadavg()]
        result["goals"] = verdicts(result)
        print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="50,000 entries, few queries: a CI smoke run")
    parser.add_argument("--entries", type=int)
    parser.add_argument("--sessions", type=int)
    parser.add_argument("--queries", type=int, help="measured queries per kind")
    parser.add_argument("--appends", type=int, help="measured appends with the index, and as many without")
    parser.add_argument("--pg-url", default=os.environ.get("HANDOFF_TEST_POSTGRES_URL", DEFAULT_PG))
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = replace(
        plan,
        entries=args.entries or plan.entries,
        sessions=args.sessions or plan.sessions,
        queries=args.queries or plan.queries,
        appends=args.appends or plan.appends,
    )
    raise SystemExit(anyio.run(main_async, args, plan))


if __name__ == "__main__":
    main()
