"""Redis is flushed, shut down and brought back while two replicas share it under load.

Redis is never a source of truth: clients see no error at any point, a read through one replica
right after a write acknowledged by the other always sees that write (flushed or not, cached pages
are keyed by exact version), the replicas keep serving with Redis gone, and they use it again once
it is back, without a restart.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio
from mcp.client import Client

from tests.conftest import structured
from tests.faults.conftest import crash_reasons, serving
from tests.faults.ledger import Attempt, Ledger, assert_intact, read_all_entries, settle, write_until
from tests.faults.services import PrivatePostgres, PrivateRedis

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

WRITERS = 4
HANG_LIMIT = 15.0
SESSION = "cached"


async def redis_keys(client: redis.asyncio.Redis) -> int:
    try:
        return int(await client.dbsize())
    except (redis.RedisError, OSError):
        return 0


async def test_redis_flushed_and_shut_down_mid_load_causes_no_errors_and_no_stale_reads(
    postgres: PrivatePostgres, redis_server: PrivateRedis
) -> None:
    ledger = Ledger(SESSION)
    stop = anyio.Event()
    stale: list[str] = []  # every read that missed an acknowledged write, described
    read_errors: list[str] = []
    reads = 0
    env = {
        "HANDOFF_REDIS_URL": redis_server.url,
        "HANDOFF_CACHE__BREAKER_RESET_SECONDS": "0.5",
        "HANDOFF_LIMITS__REQUEST_TIMEOUT_SECONDS": "10",
    }
    async with serving(postgres.url(), **env) as a, serving(postgres.url(), **env) as b:
        with anyio.fail_after(150):
            async with AsyncExitStack() as stack:
                raw = redis.asyncio.Redis(
                    host="127.0.0.1", port=redis_server.port, socket_timeout=2, socket_connect_timeout=2
                )
                stack.push_async_callback(raw.aclose)
                http_a = await stack.enter_async_context(httpx.AsyncClient(base_url=a.base, timeout=10))
                http_b = await stack.enter_async_context(httpx.AsyncClient(base_url=b.base, timeout=10))
                on_a = [await stack.enter_async_context(Client(a.url)) for _ in range(WRITERS // 2 + 1)]
                on_b = [await stack.enter_async_context(Client(b.url)) for _ in range(WRITERS // 2 + 1)]
                structured(
                    await on_a[0].call_tool("register_session", {"session_key": SESSION, "source_agent": "lead"})
                )
                for i in range(WRITERS):
                    structured(
                        await on_a[0].call_tool(
                            "request_handoff",
                            {"session_key": SESSION, "target_agent": f"agent-{i}", "handoff_type": "collaboration"},
                        )
                    )

                async def read_back(reader: Client, attempt: Attempt) -> None:
                    """Right after the ack from one replica, read through the other one (twice: miss, then hit)."""
                    nonlocal reads
                    assert attempt.receipt is not None
                    seq = attempt.receipt["sequence_number"]
                    for _ in range(2):
                        reads += 1
                        with anyio.fail_after(HANG_LIMIT):
                            result = await reader.call_tool("get_context", {"session_key": SESSION, "limit": 500})
                        if result.is_error:
                            read_errors.append(result.content[0].text)
                            return
                        assert result.structured_content is not None
                        entries: list[dict[str, Any]] = result.structured_content["entries"]
                        seen = [e["sequence_number"] for e in entries]
                        if seen[:seq] != list(range(1, seq + 1)):
                            stale.append(f"after ack of {seq}, read saw {len(seen)} entries up to {seen[-1:]}")
                        elif entries[seq - 1]["content"] != attempt.content:
                            stale.append(f"entry {seq} read back with other content")

                async def writer(i: int) -> None:
                    # Writes through one replica, reads through the other.
                    write_via, read_via = (on_a[1 + i // 2], on_b[1 + i // 2]) if i % 2 == 0 else (
                        on_b[1 + i // 2], on_a[1 + i // 2])  # fmt: skip

                    async def check(attempt: Attempt) -> None:
                        await read_back(read_via, attempt)

                    await write_until(
                        write_via,
                        ledger,
                        i,
                        f"agent-{i}",
                        stop,
                        max_appends=100,
                        hang_limit=HANG_LIMIT,
                        after_ack=check,
                    )

                async with anyio.create_task_group() as tg:
                    for i in range(WRITERS):
                        tg.start_soon(writer, i)
                    try:
                        await ledger.wait_until(lambda: len(ledger.acks) >= 20, 30, "20 appends with Redis up")
                        keys_while_up = await redis_keys(raw)

                        await raw.flushall()
                        after_flush = len(ledger.acks)
                        await ledger.wait_until(
                            lambda: len(ledger.acks) >= after_flush + 20, 30, "20 appends after FLUSHALL"
                        )

                        with anyio.fail_after(10):
                            await anyio.to_thread.run_sync(redis_server.shutdown)
                        gone_at, after_shutdown = time.monotonic(), len(ledger.acks)
                        await ledger.wait_until(
                            lambda: len(ledger.acks) >= after_shutdown + 30 and time.monotonic() - gone_at > 2,
                            30,
                            "30 appends and 2 s with Redis gone",
                        )
                        ready_without_redis = [(await h.get("/readyz")) for h in (http_a, http_b)]

                        with anyio.fail_after(10):
                            await anyio.to_thread.run_sync(redis_server.start)
                        with anyio.fail_after(20):
                            while await redis_keys(raw) == 0:
                                await ledger.next_change()
                        after_restart = len(ledger.acks)
                        await ledger.wait_until(
                            lambda: len(ledger.acks) >= after_restart + 10, 30, "10 appends after Redis came back"
                        )
                    finally:
                        stop.set()

                await settle(on_a[0], ledger, hang_limit=HANG_LIMIT)
                through_a = await read_all_entries(on_a[0], SESSION)
                through_b = await read_all_entries(on_b[0], SESSION)
                ready_after = [(await h.get("/readyz")).json() for h in (http_a, http_b)]

    assert keys_while_up > 0, "the replicas never cached anything in Redis: this test would prove nothing"
    assert ledger.failures == [], (ledger.failures[:5], crash_reasons(a) + crash_reasons(b))
    assert read_errors == [], read_errors[:5]
    assert stale == [], stale[:5]
    assert reads >= 2 * len(ledger.acknowledged)
    assert_intact(through_a, ledger)
    assert through_b == through_a
    for ready in ready_without_redis:
        assert ready.status_code == 200, ready.text  # slower without the cache, never wrong, still ready
        cache_check = next(c for c in ready.json()["checks"] if c["name"] == "cache")
        assert cache_check["ok"] is False
    for report in ready_after:
        cache_check = next(c for c in report["checks"] if c["name"] == "cache")
        assert cache_check["ok"] is True
        assert cache_check["hit_ratio"] > 0, "no read was ever served from Redis"
