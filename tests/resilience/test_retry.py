"""TransientRetry: bounded, jittered exponential backoff, driven by an injected sleep and clock."""

from __future__ import annotations

import random

import pytest

from handoff.errors import Conflict, Unavailable
from handoff.resilience import CircuitBreaker, TransientRetry
from tests.resilience.clock import FakeClock

pytestmark = pytest.mark.anyio


class Transient(ConnectionResetError):
    pass


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionResetError)


class FakeSleep:
    """Records each requested sleep and moves the fake clock instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)


class UpperBound(random.Random):
    """Jitter that always picks the top of the range, to observe the backoff ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Flaky:
    def __init__(self, failures: int, clock: FakeClock | None = None, cost: float = 0.0) -> None:
        self.failures = failures
        self.calls = 0
        self.raised: list[BaseException] = []
        self.clock = clock
        self.cost = cost

    async def __call__(self, value: str) -> str:
        self.calls += 1
        if self.clock is not None:
            self.clock.advance(self.cost)
        if self.calls <= self.failures:
            exc = Transient(f"reset #{self.calls}")
            self.raised.append(exc)
            raise exc
        return value


def make_retry(clock: FakeClock, sleep: FakeSleep, **options: object) -> TransientRetry:
    return TransientRetry(is_transient, sleep=sleep, clock=clock, **options)  # type: ignore[arg-type]


async def test_transient_failures_are_retried_until_the_operation_succeeds() -> None:
    clock = FakeClock()
    sleep = FakeSleep(clock)
    retry = make_retry(clock, sleep, attempts=5, base_delay=0.1, max_delay=2.0, rng=random.Random(7))
    op = Flaky(failures=2)

    assert await retry.call(op, "row") == "row"
    assert op.calls == 3
    assert len(sleep.delays) == 2
    assert all(0.0 <= d <= retry.backoff_ceiling(n) for n, d in enumerate(sleep.delays, start=1))
    assert retry.retries == 2
    assert retry.exhausted == 0


async def test_gives_up_after_the_attempt_limit_and_reraises_the_last_error() -> None:
    clock = FakeClock()
    sleep = FakeSleep(clock)
    retry = make_retry(clock, sleep, attempts=4, deadline=60.0)
    op = Flaky(failures=100)

    with pytest.raises(Transient) as raised:
        await retry.call(op, "row")
    assert op.calls == 4
    assert raised.value is op.raised[-1]
    assert len(sleep.delays) == 3
    assert retry.exhausted == 1


async def test_errors_the_predicate_rejects_are_not_retried() -> None:
    clock = FakeClock()
    sleep = FakeSleep(clock)
    retry = make_retry(clock, sleep, attempts=5)
    calls = 0

    async def conflicting() -> None:
        nonlocal calls
        calls += 1
        raise Conflict("idempotency key reused with other content")

    with pytest.raises(Conflict):
        await retry.call(conflicting)
    assert calls == 1
    assert sleep.delays == []


async def test_backoff_doubles_per_attempt_up_to_the_cap() -> None:
    clock = FakeClock()
    sleep = FakeSleep(clock)
    retry = make_retry(clock, sleep, attempts=7, base_delay=0.05, max_delay=0.4, deadline=60.0, rng=UpperBound())

    with pytest.raises(Transient):
        await retry.call(Flaky(failures=100), "row")
    assert sleep.delays == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.4, 0.4])


async def test_jitter_spreads_delays_below_the_ceiling() -> None:
    clock = FakeClock()
    sleep = FakeSleep(clock)
    retry = make_retry(clock, sleep, attempts=2, base_delay=1.0, max_delay=1.0, deadline=60.0, rng=random.Random(1))

    for _ in range(20):
        with pytest.raises(Transient):
            await retry.call(Flaky(failures=100), "row")
    assert len(sleep.delays) == 20
    assert all(0.0 <= d <= 1.0 for d in sleep.delays)
    assert len(set(sleep.delays)) == 20, "full jitter must not synchronise the retries of many clients"
    assert min(sleep.delays) < 0.5 < max(sleep.delays)


async def test_the_total_deadline_stops_retrying_before_a_sleep_would_pass_it() -> None:
    clock = FakeClock()
    sleep = FakeSleep(clock)
    retry = make_retry(clock, sleep, attempts=50, base_delay=0.2, max_delay=0.2, deadline=1.0, rng=UpperBound())
    started = clock.now
    op = Flaky(failures=100, clock=clock, cost=0.1)  # each attempt takes 0.1 s of (fake) time

    with pytest.raises(Transient):
        await retry.call(op, "row")
    # attempt, 0.1 s; sleep 0.2 s; ... the fourth sleep would end at 1.2 s, past the deadline.
    assert op.calls == 4
    assert len(sleep.delays) == 3
    assert clock.now - started <= 1.0 + 1e-9


async def test_an_open_circuit_ends_the_retries_at_once() -> None:
    clock = FakeClock()
    sleep = FakeSleep(clock)
    breaker = CircuitBreaker("database", failure_threshold=3, is_failure=is_transient, clock=clock)
    retry = make_retry(clock, sleep, attempts=10, deadline=60.0)
    op = Flaky(failures=100)

    with pytest.raises(Unavailable, match="the database is unavailable"):
        await retry.call(breaker.call, op, "row")
    assert op.calls == 3
    assert len(sleep.delays) == 3


async def test_the_default_sleep_really_waits_under_anyio() -> None:
    retry = TransientRetry(is_transient, attempts=3, base_delay=0.0)
    op = Flaky(failures=2)
    assert await retry.call(op, "row") == "row"
    assert op.calls == 3


def test_nonsensical_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="attempts"):
        TransientRetry(is_transient, attempts=0)
    with pytest.raises(ValueError, match="negative"):
        TransientRetry(is_transient, deadline=-1)
