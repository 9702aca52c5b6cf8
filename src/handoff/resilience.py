"""Fail fast when a dependency is down, and retry what is safe to retry when it only hiccups.

Two building blocks, both with injectable time so their tests never sleep:

- `CircuitBreaker` is a small class of our own rather than a library. The kept candidates do not fit:
  pybreaker is synchronous at heart (its async path needs Tornado), aiobreaker has been unmaintained
  since 2021, and purgatory brings its own storage layer and lets every concurrent caller probe a
  half-open circuit. We need exactly three things they make hard: a caller-given predicate for which
  exceptions are infrastructure failures (a `NotFound` from a healthy database must not trip it), a
  single probe at a time in half-open, and our own `Unavailable` error naming the dependency. That is
  about a hundred lines we can test completely with an injected clock.
- `TransientRetry` uses tenacity (the retry library the issue names and that everyone knows): full
  jitter exponential backoff, bounded attempts, a total deadline that is checked *before* each sleep
  (a retry that could not start before the deadline is not attempted), and retries only what a
  caller-given predicate calls transient. Only wrap idempotent operations (reads, or an append that
  carries an idempotency key).

Compose them as `await retry.call(breaker.call, operation)`: the breaker sees every attempt, and its
`Unavailable` is not transient, so an open circuit ends the retries at once.

Both are meant for one event loop (no thread safety): their state changes never span an `await`.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from handoff.errors import Unavailable

P = ParamSpec("P")
T = TypeVar("T")

Clock = Callable[[], float]
ExceptionPredicate = Callable[[BaseException], bool]

log = logging.getLogger(__name__)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerStats:
    """A snapshot for metrics and health reports."""

    name: str
    state: BreakerState
    opened_at: float | None
    consecutive_failures: int
    failures: int
    rejections: int
    times_opened: int


def _every_exception(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


class CircuitBreaker:
    """closed → open after `failure_threshold` consecutive failures → half-open after `reset_timeout`.

    Only exceptions for which `is_failure` is true count; any other outcome (success, or an exception
    such as `NotFound` that proves the dependency answered) resets the consecutive count. While open,
    `call` raises `Unavailable` without touching the dependency. Once `reset_timeout` has passed, the
    next caller becomes the single probe; callers arriving while it runs fail fast. A successful probe
    closes the circuit, a failed one opens it again for another `reset_timeout`, and a cancelled one
    leaves it half-open for the next caller to probe.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 10.0,
        is_failure: ExceptionPredicate = _every_exception,
        description: str | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_timeout <= 0:
            raise ValueError("reset_timeout must be positive")
        self.name = name
        self.description = description or f"the {name}"
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._is_failure = is_failure
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._opened_at: float | None = None
        self._probing = False
        self.consecutive_failures = 0
        self.failures = 0
        self.rejections = 0
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        """The state as of now: an open circuit whose timeout has passed reads as half-open."""
        if self._state is BreakerState.OPEN and self._retry_in() <= 0:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def opened_at(self) -> float | None:
        """Clock reading when the circuit last opened; None while closed."""
        return self._opened_at

    def stats(self) -> BreakerStats:
        return BreakerStats(
            name=self.name,
            state=self.state,
            opened_at=self._opened_at,
            consecutive_failures=self.consecutive_failures,
            failures=self.failures,
            rejections=self.rejections,
            times_opened=self.times_opened,
        )

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` through the breaker, or raise `Unavailable` at once if the circuit is open."""
        async with self.guard():
            return await fn(*args, **kwargs)

    @contextlib.asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """The block runs through the breaker: `Unavailable` at once while open, outcome recorded after."""
        probe = self._admit()
        try:
            yield
        except Exception as exc:
            if self._is_failure(exc):
                self._record_failure(probe)
            else:
                self._record_success(probe)
            raise
        except BaseException:
            # Cancelled (or interpreter exit): we learnt nothing about the dependency.
            if probe:
                self._probing = False
            raise
        self._record_success(probe)

    def _retry_in(self) -> float:
        assert self._opened_at is not None
        return self._opened_at + self.reset_timeout - self._clock()

    def _admit(self) -> bool:
        """Let the call through (True when it is the half-open probe) or raise Unavailable."""
        if self._state is BreakerState.CLOSED:
            return False
        if self._state is BreakerState.OPEN:
            remaining = self._retry_in()
            if remaining > 0:
                self.rejections += 1
                raise Unavailable(
                    f"{self.description} is unavailable (circuit open, retrying in {math.ceil(remaining)}s)",
                    {"dependency": self.name, "retry_after_seconds": math.ceil(remaining)},
                )
            self._state = BreakerState.HALF_OPEN
        if self._probing:
            self.rejections += 1
            raise Unavailable(
                f"{self.description} is unavailable (circuit half-open, a recovery probe is in progress)",
                {"dependency": self.name, "retry_after_seconds": 1},
            )
        self._probing = True
        return True

    def _record_success(self, probe: bool) -> None:
        if probe:
            self._probing = False
            self._state = BreakerState.CLOSED
            self._opened_at = None
            self.consecutive_failures = 0
            log.info("circuit %s closed: the recovery probe succeeded", self.name)
        elif self._state is BreakerState.CLOSED:
            self.consecutive_failures = 0
        # A call admitted while closed that finishes after the circuit opened proves little; only
        # the probe closes an open circuit.

    def _record_failure(self, probe: bool) -> None:
        self.failures += 1
        if probe:
            self._probing = False
            self._open()
            log.warning("circuit %s re-opened: the recovery probe failed", self.name)
            return
        if self._state is not BreakerState.CLOSED:
            return
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.failure_threshold:
            self._open()
            log.warning(
                "circuit %s opened after %d consecutive failures; failing fast for %.1fs",
                self.name,
                self.consecutive_failures,
                self.reset_timeout,
            )

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self.times_opened += 1


class TransientRetry:
    """Retry an idempotent operation on transient failures, with full-jitter exponential backoff.

    Attempt n (1-based) that fails transiently is followed by a sleep drawn uniformly from
    [0, min(max_delay, base_delay * 2**(n-1))], unless `attempts` have been made or the sleep would end
    past `deadline` seconds after the first attempt started; then the last exception is re-raised as
    is. Non-transient exceptions propagate at once. The deadline bounds the retrying, not a running
    attempt: bound each attempt with a request deadline (`anyio.fail_after`) where that matters.
    """

    def __init__(
        self,
        is_transient: ExceptionPredicate,
        *,
        attempts: int = 3,
        base_delay: float = 0.05,
        max_delay: float = 1.0,
        deadline: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if base_delay < 0 or max_delay < 0 or deadline < 0:
            raise ValueError("delays and deadline must not be negative")
        self._is_transient = is_transient
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.deadline = deadline
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self.retries = 0  # sleeps taken, over the object's life (for metrics)
        self.exhausted = 0  # transient failures that were given up on

    def backoff_ceiling(self, attempt_number: int) -> float:
        """The largest sleep after failed attempt `attempt_number` (1-based)."""
        return min(self.max_delay, self.base_delay * 2.0 ** (attempt_number - 1))

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        started = self._clock()

        def wait(state: RetryCallState) -> float:
            return self._rng.uniform(0.0, self.backoff_ceiling(state.attempt_number))

        def stop(state: RetryCallState) -> bool:
            give_up = (
                state.attempt_number >= self.attempts or self._clock() - started + state.upcoming_sleep > self.deadline
            )
            if give_up:
                self.exhausted += 1
            return give_up

        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.info(
                "transient failure (%s), retry %d in %.3fs",
                type(exc).__name__,
                state.attempt_number,
                state.upcoming_sleep,
            )

        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=stop,
            wait=wait,
            retry=retry_if_exception(self._is_transient),
            before_sleep=before_sleep,
            reraise=True,
        )
        return await retrying(fn, *args, **kwargs)
