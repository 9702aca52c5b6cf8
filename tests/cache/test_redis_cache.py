"""RedisCache against the real local Redis, behind a stallable proxy, and against a closed port."""

from __future__ import annotations

import logging
import socket
import time
from urllib.parse import urlsplit

import anyio
import pytest
import redis.asyncio

from handoff.cache import Cache
from handoff.cache.redis_cache import RedisCache
from handoff.errors import Unavailable
from tests.cache.conftest import with_address
from tests.cache.proxy import stallable_proxy
from tests.resilience.clock import FakeClock

pytestmark = pytest.mark.anyio


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_stored_value_is_read_back_and_counted(redis_url: str, key_prefix: str) -> None:
    cache: Cache = RedisCache(redis_url, key_prefix=key_prefix)
    try:
        await cache.set("session:a", b"\x00binary\xff", ttl_seconds=60)
        assert await cache.get("session:a") == b"\x00binary\xff"
        assert await cache.get("session:missing") is None
        stats = cache.stats()
        assert (stats.backend, stats.hits, stats.misses, stats.sets, stats.errors) == ("redis", 1, 1, 1, 0)
        assert stats.circuit == "closed"
    finally:
        await cache.close()


async def test_values_live_under_the_prefix_with_a_millisecond_ttl(
    redis_url: str, key_prefix: str, raw_redis: redis.asyncio.Redis
) -> None:
    cache = RedisCache(redis_url, key_prefix=key_prefix)
    try:
        await cache.set("brief:1", b"text", ttl_seconds=1.5)
        assert await raw_redis.get(key_prefix + "brief:1") == b"text"
        pttl = await raw_redis.pttl(key_prefix + "brief:1")
        assert 0 < pttl <= 1500
        assert await raw_redis.exists("brief:1") == 0, "keys must never be written without the prefix"
    finally:
        await cache.close()


async def test_an_entry_disappears_after_its_ttl(redis_url: str, key_prefix: str) -> None:
    cache = RedisCache(redis_url, key_prefix=key_prefix)
    try:
        await cache.set("short", b"v", ttl_seconds=0.15)
        assert await cache.get("short") == b"v"
        with anyio.fail_after(3):
            while await cache.get("short") is not None:
                await anyio.sleep(0.02)
        assert cache.stats().errors == 0
    finally:
        await cache.close()


async def test_delete_and_non_positive_ttl_remove_the_key(
    redis_url: str, key_prefix: str, raw_redis: redis.asyncio.Redis
) -> None:
    cache = RedisCache(redis_url, key_prefix=key_prefix)
    try:
        await cache.set("a", b"1", ttl_seconds=60)
        await cache.set("b", b"2", ttl_seconds=60)
        await cache.delete("a")
        await cache.set("b", b"3", ttl_seconds=0)
        assert await raw_redis.exists(key_prefix + "a", key_prefix + "b") == 0
        assert await cache.get("a") is None
        assert cache.stats().deletes == 2
    finally:
        await cache.close()


async def test_ping_returns_when_redis_answers(redis_url: str, key_prefix: str) -> None:
    cache = RedisCache(redis_url, key_prefix=key_prefix)
    try:
        await cache.ping()
        assert cache.stats().errors == 0
    finally:
        await cache.close()


async def test_a_stalled_redis_costs_one_timeout_per_call_until_the_circuit_opens_then_recovers(
    redis_url: str, key_prefix: str
) -> None:
    target = urlsplit(redis_url)
    clock = FakeClock()
    async with stallable_proxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        cache = RedisCache(
            with_address(redis_url, "127.0.0.1", proxy.port),
            key_prefix=key_prefix,
            socket_timeout=0.2,
            failure_threshold=2,
            reset_timeout=5.0,
            clock=clock,
        )
        try:
            await cache.set("k", b"v", ttl_seconds=60)
            assert await cache.get("k") == b"v"

            proxy.stall()
            for expected_errors in (1, 2):  # the pooled connection, then a fresh one: both hang
                started = time.monotonic()
                with anyio.fail_after(5):
                    assert await cache.get("k") is None
                assert time.monotonic() - started < cache.socket_timeout + 0.5
                assert cache.stats().errors == expected_errors
            assert cache.stats().circuit == "open"

            connections = proxy.connections
            started = time.monotonic()
            with anyio.fail_after(5):
                assert await cache.get("k") is None
                await cache.set("k", b"lost", ttl_seconds=60)
            assert time.monotonic() - started < cache.socket_timeout, "an open circuit must not wait"
            stats = cache.stats()
            assert (stats.errors, stats.short_circuits) == (2, 2)
            assert proxy.connections == connections, "an open circuit must not touch the network"
            with pytest.raises(Unavailable, match="the Redis cache is unavailable"):
                await cache.ping()

            proxy.resume()
            clock.advance(5.0)
            with anyio.fail_after(5):
                assert await cache.get("k") == b"v"  # the half-open probe succeeds
            stats = cache.stats()
            assert stats.circuit == "closed"
            assert stats.hits == 2
            assert stats.errors == 2
        finally:
            await cache.close()


async def test_concurrent_calls_to_a_stalled_redis_all_end_within_the_timeout(redis_url: str, key_prefix: str) -> None:
    target = urlsplit(redis_url)
    async with stallable_proxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        cache = RedisCache(
            with_address(redis_url, "127.0.0.1", proxy.port),
            key_prefix=key_prefix,
            socket_timeout=0.2,
            max_connections=8,
            failure_threshold=3,
        )
        try:
            await cache.set("k", b"v", ttl_seconds=60)
            proxy.stall()
            results: list[bytes | None] = []

            async def read() -> None:
                results.append(await cache.get("k"))

            started = time.monotonic()
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    for _ in range(40):
                        tg.start_soon(read)
            assert time.monotonic() - started < cache.socket_timeout + 0.5, "calls must not queue up"
            assert results == [None] * 40
            stats = cache.stats()
            assert stats.misses == 40
            assert 1 <= stats.errors <= 40
            assert stats.circuit == "open"
        finally:
            await cache.close()


async def test_a_closed_port_gives_misses_and_no_exceptions() -> None:
    cache = RedisCache(f"redis://127.0.0.1:{closed_port()}/0", key_prefix="unused:", failure_threshold=2)
    try:
        with anyio.fail_after(5):
            await cache.set("k", b"v", ttl_seconds=60)
            assert await cache.get("k") is None
            await cache.delete("k")
            assert await cache.get("k") is None
        stats = cache.stats()
        assert (stats.errors, stats.short_circuits, stats.misses, stats.hits) == (2, 2, 2, 0)
        assert stats.circuit == "open"
        with pytest.raises(Unavailable, match=r"circuit open, retrying in 5s"):
            await cache.ping()
    finally:
        await cache.close()


async def test_ping_raises_unavailable_when_redis_is_unreachable() -> None:
    cache = RedisCache(f"redis://127.0.0.1:{closed_port()}/0", key_prefix="unused:")
    try:
        with pytest.raises(Unavailable) as raised, anyio.fail_after(5):
            await cache.ping()
        assert raised.value.message == "the Redis cache is unavailable"
        assert raised.value.details == {"dependency": "redis"}
        assert cache.stats().errors == 1
    finally:
        await cache.close()


async def test_failures_are_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    cache = RedisCache(
        f"redis://127.0.0.1:{closed_port()}/0",
        key_prefix="unused:",
        failure_threshold=100,
        log_interval=30.0,
        clock=clock,
    )
    try:
        with caplog.at_level(logging.WARNING, logger="handoff.cache.redis_cache"):
            for _ in range(5):
                assert await cache.get("k") is None
            clock.advance(30.0)
            assert await cache.get("k") is None
        records = [r for r in caplog.records if r.name == "handoff.cache.redis_cache"]
        assert len(records) == 2
        assert [r.msg["failures_not_logged"] for r in records] == [0, 4]  # type: ignore[index]
        assert records[0].msg["operation"] == "get"  # type: ignore[index]
        assert cache.stats().errors == 6
    finally:
        await cache.close()
