"""MemoryCache: LRU eviction by entries and by bytes, TTL under an injected clock, counters."""

from __future__ import annotations

import pytest

from handoff.cache import Cache, MemoryCache
from tests.resilience.clock import FakeClock

pytestmark = pytest.mark.anyio


def cost(key: str, value: bytes) -> int:
    return len(key.encode()) + len(value)


async def test_a_stored_value_is_returned_and_counted_as_a_hit() -> None:
    cache: Cache = MemoryCache()
    await cache.set("session:a", b"payload", ttl_seconds=60)

    assert await cache.get("session:a") == b"payload"
    assert await cache.get("session:b") is None
    stats = cache.stats()
    assert (stats.backend, stats.hits, stats.misses, stats.sets, stats.errors) == ("memory", 1, 1, 1, 0)
    assert stats.entries == 1
    assert stats.bytes == cost("session:a", b"payload")
    assert stats.hit_ratio == 0.5


async def test_an_entry_expires_exactly_at_its_ttl() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    await cache.set("brief", b"text", ttl_seconds=30)

    clock.advance(29.999)
    assert await cache.get("brief") == b"text"
    clock.advance(0.001)
    assert await cache.get("brief") is None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries, stats.bytes) == (1, 1, 0, 0)


async def test_each_entry_keeps_its_own_ttl() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    await cache.set("short", b"1", ttl_seconds=5)
    await cache.set("long", b"2", ttl_seconds=50)
    clock.advance(10)
    assert await cache.get("short") is None
    assert await cache.get("long") == b"2"


async def test_overwriting_renews_the_ttl_and_the_byte_count() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    await cache.set("k", b"x" * 100, ttl_seconds=10)
    clock.advance(8)
    await cache.set("k", b"y" * 10, ttl_seconds=10)
    clock.advance(8)
    assert await cache.get("k") == b"y" * 10
    assert cache.stats().bytes == cost("k", b"y" * 10)
    assert cache.stats().entries == 1


async def test_the_least_recently_used_entry_is_evicted_when_entries_run_out() -> None:
    cache = MemoryCache(max_entries=3)
    for key in ("a", "b", "c"):
        await cache.set(key, key.encode(), ttl_seconds=60)
    assert await cache.get("a") == b"a"  # a is now the most recently used; b the least

    await cache.set("d", b"d", ttl_seconds=60)
    assert await cache.get("b") is None
    assert [await cache.get(k) for k in ("a", "c", "d")] == [b"a", b"c", b"d"]
    assert cache.stats().evictions == 1
    assert cache.stats().entries == 3


async def test_entries_are_evicted_in_lru_order_until_the_new_value_fits_the_byte_budget() -> None:
    cache = MemoryCache(max_bytes=100, max_entries=1000)
    for key in ("k1", "k2", "k3", "k4"):
        await cache.set(key, b"v" * 18, ttl_seconds=60)  # 20 bytes each, 80 in all
    assert await cache.get("k1") is not None  # order, oldest first: k2 k3 k4 k1

    await cache.set("big", b"w" * 47, ttl_seconds=60)  # 50 bytes: k2 and k3 must go
    assert await cache.get("k2") is None
    assert await cache.get("k3") is None
    assert await cache.get("k4") == b"v" * 18
    assert await cache.get("k1") == b"v" * 18
    assert await cache.get("big") == b"w" * 47
    stats = cache.stats()
    assert stats.bytes == 90
    assert stats.evictions == 2
    assert stats.bytes <= cache.max_bytes


async def test_a_value_larger_than_the_whole_budget_is_not_stored_and_drops_the_old_one() -> None:
    cache = MemoryCache(max_bytes=64)
    await cache.set("k", b"small", ttl_seconds=60)
    await cache.set("other", b"kept", ttl_seconds=60)

    await cache.set("k", b"x" * 64, ttl_seconds=60)  # 65 bytes with the key
    assert await cache.get("k") is None, "a stale smaller value must not survive a failed overwrite"
    assert await cache.get("other") == b"kept"
    assert cache.stats().evictions == 0


async def test_memory_stays_within_the_byte_budget_under_many_writes() -> None:
    cache = MemoryCache(max_bytes=10_000, max_entries=10_000)
    for i in range(2_000):
        await cache.set(f"page:{i}", bytes(i % 700), ttl_seconds=60)
        assert cache.stats().bytes <= 10_000
    stats = cache.stats()
    assert stats.entries is not None and stats.entries < 2_000
    assert stats.bytes == sum(cost(f"page:{i}", bytes(i % 700)) for i in range(2_000 - stats.entries, 2_000))


async def test_delete_and_non_positive_ttl_remove_the_entry() -> None:
    cache = MemoryCache()
    await cache.set("a", b"1", ttl_seconds=60)
    await cache.set("b", b"2", ttl_seconds=60)

    await cache.delete("a")
    await cache.delete("never-stored")
    await cache.set("b", b"3", ttl_seconds=0)
    assert await cache.get("a") is None
    assert await cache.get("b") is None
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.deletes) == (0, 0, 2)


async def test_stored_bytes_are_a_copy_of_the_callers_buffer() -> None:
    cache = MemoryCache()
    buffer = bytearray(b"original")
    await cache.set("k", buffer, ttl_seconds=60)  # type: ignore[arg-type]
    buffer[:] = b"mutated!"
    assert await cache.get("k") == b"original"


async def test_ping_answers_and_close_empties_the_cache() -> None:
    cache = MemoryCache()
    await cache.set("k", b"v", ttl_seconds=60)
    await cache.ping()
    await cache.close()
    assert await cache.get("k") is None
    assert cache.stats().bytes == 0


def test_nonsensical_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryCache(max_bytes=0)
    with pytest.raises(ValueError, match="positive"):
        MemoryCache(max_entries=0)
