"""The cache port: what services may ask of a cache, and the counters it reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CacheStats:
    """Counters since the cache was built. `errors` counts failures of the backend that were absorbed
    (turned into a miss or a no-op); `short_circuits` counts calls skipped while its circuit was open."""

    backend: str
    hits: int = 0
    misses: int = 0
    sets: int = 0
    deletes: int = 0
    errors: int = 0
    short_circuits: int = 0
    evictions: int = 0
    entries: int | None = None  # None where the backend cannot tell cheaply
    bytes: int | None = None
    circuit: str | None = None  # breaker state, for backends that have one

    @property
    def hit_ratio(self) -> float:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


class Cache(Protocol):
    """A byte cache with per-entry TTL. Every method but `ping` absorbs backend failures."""

    async def get(self, key: str) -> bytes | None:
        """The value, or None on a miss, an expired entry or any backend failure."""
        ...

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Store `value` for `ttl_seconds` (<= 0 removes the key). Failures are a silent no-op."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the key if present. Failures are a silent no-op: never rely on it for correctness."""
        ...

    def stats(self) -> CacheStats: ...

    async def ping(self) -> None:
        """Return when the backend answers; raise `handoff.errors.Unavailable` when it does not."""
        ...

    async def close(self) -> None: ...
