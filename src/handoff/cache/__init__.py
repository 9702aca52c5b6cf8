"""Caches behind one port: an in-process LRU (default) and Redis (when `HANDOFF_REDIS_URL` is set).

Neither is ever a source of truth. Readers must be able to tell a stale entry from a fresh one without
the cache's help (the write path bumps a version that is part of the key), because a `delete` may not
reach a Redis that is down.
"""

from handoff.cache.memory import MemoryCache
from handoff.cache.port import Cache, CacheStats

__all__ = ["Cache", "CacheStats", "MemoryCache"]
