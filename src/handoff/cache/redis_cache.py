"""The Redis cache: shared by every replica, never a source of truth.

Every failure of Redis (refused, reset, timed out, hung) becomes a miss on `get` and a no-op on
`set`/`delete`, is counted in `stats().errors`, and is logged at most once per `log_interval` seconds
(with the number of failures not logged in between). Three bounds keep a bad Redis cheap:

- time: every operation, connection establishment included, ends within `socket_timeout` — redis-py's
  own socket timeouts, plus an outer deadline for whatever they do not cover; redis-py's internal
  retries are switched off (we would rather miss than wait);
- connections: the pool holds at most `max_connections`; when they are all busy the call is a miss at
  once instead of a queue;
- repetition: a `CircuitBreaker` opens after `failure_threshold` consecutive infrastructure failures,
  and while open no call touches the network; after `reset_timeout` one call probes and, if Redis
  answers, the cache is back without a restart.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import MaxConnectionsError, RedisError, ResponseError

from handoff.cache.port import CacheStats
from handoff.errors import Unavailable
from handoff.logs import get_logger
from handoff.resilience import CircuitBreaker

T = TypeVar("T")

log = get_logger(__name__)

# What a failing Redis raises: redis-py's errors, and OSError (which includes TimeoutError, also the
# one `anyio.fail_after` raises) for anything the socket layer lets through.
REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError)


def is_infrastructure_failure(exc: BaseException) -> bool:
    """Does this failure say Redis is unreachable or unhealthy (and so count towards the breaker)?

    A `ResponseError` means Redis answered (a command it refused), and an exhausted pool means we are
    busy, not that Redis is down: both are absorbed but do not open the circuit.
    """
    if isinstance(exc, ResponseError | MaxConnectionsError):
        return False
    return isinstance(exc, REDIS_FAILURES)


class RedisCache:
    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "handoff:",
        socket_timeout: float = 0.25,
        max_connections: int = 64,
        failure_threshold: int = 3,
        reset_timeout: float = 5.0,
        log_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if socket_timeout <= 0:
            raise ValueError("socket_timeout must be positive")
        self.key_prefix = key_prefix
        self.socket_timeout = socket_timeout
        self._client: Redis = Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
            max_connections=max_connections,
            health_check_interval=0,
        )
        self.breaker = CircuitBreaker(
            "redis",
            description="the Redis cache",
            failure_threshold=failure_threshold,
            reset_timeout=reset_timeout,
            is_failure=is_infrastructure_failure,
            clock=clock,
        )
        self._clock = clock
        self._log_interval = log_interval
        self._last_logged: float | None = None
        self._unlogged = 0
        self._hits = 0
        self._misses = 0
        self._sets = 0
        self._deletes = 0
        self._errors = 0
        self._short_circuits = 0

    async def get(self, key: str) -> bytes | None:
        try:
            raw = await self._call("get", self._client.get, self._key(key))
        except _Absorbed:
            raw = None
        value = raw.encode() if isinstance(raw, str) else raw  # str only if a URL asks to decode
        if value is None:
            self._misses += 1
        else:
            self._hits += 1
        return value

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        self._sets += 1
        if ttl_seconds <= 0:
            await self.delete(key)
            return
        ttl_ms = max(1, round(ttl_seconds * 1000))
        with contextlib.suppress(_Absorbed):
            await self._call("set", self._client.set, self._key(key), value, px=ttl_ms)

    async def delete(self, key: str) -> None:
        self._deletes += 1
        with contextlib.suppress(_Absorbed):
            await self._call("delete", self._client.delete, self._key(key))

    def stats(self) -> CacheStats:
        return CacheStats(
            backend="redis",
            hits=self._hits,
            misses=self._misses,
            sets=self._sets,
            deletes=self._deletes,
            errors=self._errors,
            short_circuits=self._short_circuits,
            circuit=self.breaker.state.value,
        )

    async def ping(self) -> None:
        try:
            await self._call("ping", self._client.ping)
        except _Absorbed as absorbed:
            if isinstance(absorbed.cause, Unavailable):
                raise absorbed.cause from None
            raise Unavailable("the Redis cache is unavailable", {"dependency": "redis"}) from absorbed.cause

    async def close(self) -> None:
        await self._client.aclose()

    def _key(self, key: str) -> str:
        return self.key_prefix + key

    async def _call(self, operation: str, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run one Redis command through the breaker within the deadline; raise _Absorbed on failure."""
        try:
            return await self.breaker.call(self._bounded, fn, *args, **kwargs)
        except Unavailable as exc:
            self._short_circuits += 1
            raise _Absorbed(exc) from None
        except REDIS_FAILURES as exc:
            self._errors += 1
            self._report(operation, exc)
            raise _Absorbed(exc) from None

    async def _bounded(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        with anyio.fail_after(self.socket_timeout):
            return await fn(*args, **kwargs)

    def _report(self, operation: str, exc: BaseException) -> None:
        now = self._clock()
        if self._last_logged is not None and now - self._last_logged < self._log_interval:
            self._unlogged += 1
            return
        log.warning(
            "redis cache failure absorbed; serving from the database",
            operation=operation,
            error=type(exc).__name__,
            detail=str(exc)[:200],
            circuit=self.breaker.state.value,
            failures_not_logged=self._unlogged,
        )
        self._last_logged = now
        self._unlogged = 0


class _Absorbed(Exception):
    """Internal: the operation failed and the failure has been counted and logged."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause
