"""Two `handoff serve` HTTP replicas on one PostgreSQL schema, as behind a load balancer.

Correctness must come from the database alone (the row lock on the session counter, the unique
constraints), so 32 separate connections, half to each replica, append to one session at once; and
with Redis shared by both replicas, a read through one replica never misses a write the other
acknowledged.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any

import anyio
import httpx
import pytest
import redis
from mcp.client import Client

from tests.conftest import POSTGRES_URL, REDIS_URL, drop_postgres_schema, structured
from tests.e2e.servers import RunningServer, http_server
from tests.faults.ledger import Ledger, assert_intact, read_all_entries, sha256, write_until

pytestmark = pytest.mark.anyio

CLIENTS_PER_REPLICA = 16
APPENDS_PER_CLIENT = 12
SESSION = "shared"


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def postgres_schema() -> Iterator[tuple[str, str]]:
    """(database URL, a fresh schema both replicas share); the schema is dropped afterwards."""
    if not POSTGRES_URL:
        _missing("set HANDOFF_TEST_POSTGRES_URL to run the replica tests")
    assert POSTGRES_URL is not None
    schema = f"handoff_r_{uuid.uuid4().hex[:12]}"
    try:
        yield POSTGRES_URL, schema
    finally:
        drop_postgres_schema(POSTGRES_URL, schema)


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(Redis URL, a key prefix of this test's own); its keys are deleted afterwards, nothing is flushed."""
    url = REDIS_URL or "redis://127.0.0.1:6379/0"
    client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        try:
            client.ping()
        except (redis.RedisError, OSError):
            _missing(f"Redis at {url} does not answer (set HANDOFF_TEST_REDIS_URL)")
        prefix = f"handoff-test:{uuid.uuid4().hex}:"
        yield url, prefix
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@asynccontextmanager
async def clients(url: str, count: int) -> AsyncIterator[list[Client]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(Client(url)) for _ in range(count)]


@contextmanager
def two_replicas(database_url: str, **env: str) -> Iterator[tuple[RunningServer, RunningServer]]:
    # Started one after the other: the first migrates the schema, the second finds it current.
    with http_server(database_url, **env) as a, http_server(database_url, **env) as b:
        yield a, b


async def test_32_clients_on_two_replicas_appending_to_one_session_get_gap_free_numbers_and_identical_reads(
    postgres_schema: tuple[str, str],
) -> None:
    url, schema = postgres_schema
    ledger = Ledger(SESSION)
    never = anyio.Event()
    replica_of: dict[int, str] = {}
    with two_replicas(url, HANDOFF_DB__SCHEMA_NAME=schema) as (a, b):
        with anyio.fail_after(180):
            async with clients(a.url, CLIENTS_PER_REPLICA) as on_a, clients(b.url, CLIENTS_PER_REPLICA) as on_b:
                structured(
                    await on_a[0].call_tool("register_session", {"session_key": SESSION, "source_agent": "lead"})
                )
                writers = on_a + on_b
                for i in range(len(writers)):
                    structured(
                        await on_b[0].call_tool(
                            "request_handoff",
                            {"session_key": SESSION, "target_agent": f"agent-{i}", "handoff_type": "collaboration"},
                        )
                    )
                    replica_of[i] = "a" if i < CLIENTS_PER_REPLICA else "b"

                async with anyio.create_task_group() as tg:
                    for i, client in enumerate(writers):
                        tg.start_soon(
                            lambda c=client, i=i: write_until(
                                c, ledger, i, f"agent-{i}", never, max_appends=APPENDS_PER_CLIENT, hang_limit=60
                            )
                        )

                through_a = await read_all_entries(on_a[0], SESSION, page=97)  # odd page size: cursors cross pages
                through_b = await read_all_entries(on_b[0], SESSION)
                assert ledger.failures == [], ledger.failures[:5]
                assert_intact(through_a, ledger)

                # A retry that reaches the other replica replays the original entry instead of adding one.
                sample = [sent for sent in ledger.acknowledged if sent.key.endswith("-3")]
                retries: list[tuple[dict[str, Any], dict[str, Any]]] = []
                for attempt in sample:
                    other = on_b[1] if replica_of[attempt.writer] == "a" else on_a[1]
                    retried = structured(await other.call_tool("update_context", attempt.arguments(SESSION)))
                    assert attempt.receipt is not None
                    retries.append((attempt.receipt, retried["entry"]))

                # The same new key sent to both replicas at once, by four clients on each: it lands once.
                racing: list[dict[str, Any]] = []
                fresh = ledger.new_attempt(0, "agent-0")

                async def race(client: Client) -> None:
                    racing.append(
                        structured(await client.call_tool("update_context", fresh.arguments(SESSION)))["entry"]
                    )

                async with anyio.create_task_group() as tg:
                    for client in on_a[2:6] + on_b[2:6]:
                        tg.start_soon(race, client)
                fresh.receipt = racing[0]
                after_a = await read_all_entries(on_a[0], SESSION)
                after_b = await read_all_entries(on_b[0], SESSION)
                session = structured(await on_b[0].call_tool("get_session", {"session_key": SESSION}))["session"]

    total = 2 * CLIENTS_PER_REPLICA * APPENDS_PER_CLIENT
    assert len(ledger.acknowledged) == total + 1
    assert through_b == through_a
    assert [e["sequence_number"] for e in through_a] == list(range(1, total + 1))

    # Both replicas really wrote at the same time: their sequence numbers interleave.
    seqs_by_replica: dict[str, list[int]] = {"a": [], "b": []}
    for attempt in ledger.acknowledged:
        if attempt is not fresh and attempt.receipt is not None:
            seqs_by_replica[replica_of[attempt.writer]].append(attempt.receipt["sequence_number"])
    assert min(seqs_by_replica["b"]) < max(seqs_by_replica["a"])
    assert min(seqs_by_replica["a"]) < max(seqs_by_replica["b"])

    assert len(retries) == 2 * CLIENTS_PER_REPLICA
    for original, retried in retries:
        assert retried["replayed"] is True
        for field in ("sequence_number", "content_sha256", "content_bytes", "created_at"):
            assert retried[field] == original[field]

    assert len(racing) == 8
    assert {e["sequence_number"] for e in racing} == {total + 1}
    assert sorted(e["replayed"] for e in racing) == [False] + [True] * 7
    assert racing[0]["content_sha256"] == sha256(fresh.content)
    assert_intact(after_a, ledger)
    assert after_b == after_a
    assert session["entry_count"] == total + 1


async def test_with_redis_a_read_through_one_replica_right_after_a_write_acknowledged_by_the_other_sees_it(
    postgres_schema: tuple[str, str], redis_prefix: tuple[str, str]
) -> None:
    url, schema = postgres_schema
    redis_url, prefix = redis_prefix
    ledger = Ledger(SESSION)
    stale: list[str] = []
    env = {"HANDOFF_DB__SCHEMA_NAME": schema, "HANDOFF_REDIS_URL": redis_url, "HANDOFF_CACHE__KEY_PREFIX": prefix}
    with two_replicas(url, **env) as (a, b):
        with anyio.fail_after(120):
            async with (
                clients(a.url, 1) as (on_a,),
                clients(b.url, 1) as (on_b,),
                httpx.AsyncClient(timeout=10) as http,
            ):
                structured(await on_a.call_tool("register_session", {"session_key": SESSION, "source_agent": "lead"}))
                for n in range(40):
                    writer, reader = (on_a, on_b) if n % 2 == 0 else (on_b, on_a)
                    # The reader has just cached the current page (read twice: a miss, then a hit)...
                    for _ in range(2):
                        structured(await reader.call_tool("get_context", {"session_key": SESSION}))
                    # ...then the other replica acknowledges a write...
                    attempt = ledger.new_attempt(n % 2, "lead")
                    assert await ledger.send(writer, attempt, hang_limit=30), ledger.failures[-1:]
                    assert attempt.receipt is not None
                    seq = attempt.receipt["sequence_number"]
                    # ...and a read through the reader sees it at once, by tool and by resource.
                    page = structured(await reader.call_tool("get_context", {"session_key": SESSION}))
                    resource = await reader.read_resource(f"handoff://sessions/{SESSION}/context")
                    by_resource = json.loads(resource.contents[0].text)  # type: ignore[union-attr]
                    session = structured(await reader.call_tool("get_session", {"session_key": SESSION}))["session"]
                    for how, entries in (("tool", page["entries"]), ("resource", by_resource["entries"])):
                        if [e["sequence_number"] for e in entries] != list(range(1, seq + 1)):
                            stale.append(f"{how} read after ack of {seq} saw {len(entries)} entries")
                        elif entries[-1]["content"] != attempt.content:
                            stale.append(f"{how} read of entry {seq} has other content")
                    if session["entry_count"] != seq:
                        stale.append(f"session read after ack of {seq} says {session['entry_count']} entries")
                reports = [(await http.get(f"{s.base}/readyz")).json() for s in (a, b)]
                entries = await read_all_entries(on_b, SESSION)

    keys = redis.Redis.from_url(redis_url, socket_timeout=2.0)
    try:
        cached = list(keys.scan_iter(match=prefix + "*"))
    finally:
        keys.close()
    assert stale == [], stale[:5]
    assert cached, "nothing was cached in Redis under the replicas' prefix: this test would prove nothing"
    for report in reports:
        cache_check = next(c for c in report["checks"] if c["name"] == "cache")
        assert (cache_check["backend"], cache_check["ok"]) == ("redis", True)
        assert cache_check["hit_ratio"] > 0, "no read was served from Redis"
    assert_intact(entries, ledger)
    assert len(entries) == 40
