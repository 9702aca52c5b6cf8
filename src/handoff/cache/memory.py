"""The in-process cache: a bounded LRU with per-entry TTL, accounted in bytes.

Used when no Redis is configured, one per process. Bounded twice, by entries and by bytes (the
UTF-8 key plus the value), so memory stays flat however large the cached pages are; an entry larger
than the byte budget is simply not stored. Expired entries are dropped when read and pushed out by
LRU eviction like any other. All methods complete without awaiting, so they are atomic on the loop.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from handoff.cache.port import CacheStats

MIB = 1024 * 1024


@dataclass(slots=True)
class _Entry:
    value: bytes
    expires_at: float
    cost: int


class MemoryCache:
    def __init__(
        self,
        *,
        max_bytes: int = 64 * MIB,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes < 1 or max_entries < 1:
            raise ValueError("max_bytes and max_entries must be positive")
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._sets = 0
        self._deletes = 0
        self._evictions = 0

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            self._misses += 1
            return None
        if entry.expires_at <= self._clock():
            self._remove(key)
            self._misses += 1
            return None
        self._entries.move_to_end(key)
        self._hits += 1
        return entry.value

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        self._sets += 1
        if key in self._entries:
            self._remove(key)
        cost = len(key.encode()) + len(value)
        if ttl_seconds <= 0 or cost > self.max_bytes:
            return
        while self._entries and (len(self._entries) >= self.max_entries or self._bytes + cost > self.max_bytes):
            oldest = next(iter(self._entries))
            self._remove(oldest)
            self._evictions += 1
        self._entries[key] = _Entry(bytes(value), self._clock() + ttl_seconds, cost)
        self._bytes += cost

    async def delete(self, key: str) -> None:
        self._deletes += 1
        if key in self._entries:
            self._remove(key)

    def stats(self) -> CacheStats:
        return CacheStats(
            backend="memory",
            hits=self._hits,
            misses=self._misses,
            sets=self._sets,
            deletes=self._deletes,
            evictions=self._evictions,
            entries=len(self._entries),
            bytes=self._bytes,
        )

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.cost
