"""CircuitBreaker: state machine under an injected clock, and the single half-open probe under concurrency."""

from __future__ import annotations

import pytest
from anyio import Event, create_task_group, fail_after, wait_all_tasks_blocked

from handoff.errors import NotFound, Unavailable
from handoff.resilience import BreakerState, CircuitBreaker
from tests.resilience.clock import FakeClock

pytestmark = pytest.mark.anyio


class DatabaseDown(OSError):
    pass


def is_infrastructure(exc: BaseException) -> bool:
    return isinstance(exc, OSError)


class Dependency:
    """A stand-in for a database call that counts how often it was actually reached."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False

    async def query(self, value: str = "row") -> str:
        self.calls += 1
        if self.failing:
            raise DatabaseDown("connection refused")
        return value


def make_breaker(clock: FakeClock, threshold: int = 3, reset_timeout: float = 10.0) -> CircuitBreaker:
    return CircuitBreaker(
        "database",
        failure_threshold=threshold,
        reset_timeout=reset_timeout,
        is_failure=is_infrastructure,
        clock=clock,
    )


async def trip(breaker: CircuitBreaker, dep: Dependency) -> None:
    dep.failing = True
    for _ in range(breaker.failure_threshold):
        with pytest.raises(DatabaseDown):
            await breaker.call(dep.query)
    assert breaker.state is BreakerState.OPEN


async def test_circuit_stays_closed_below_the_failure_threshold() -> None:
    breaker, dep = make_breaker(FakeClock()), Dependency()
    dep.failing = True
    for _ in range(2):
        with pytest.raises(DatabaseDown):
            await breaker.call(dep.query)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 2
    assert breaker.opened_at is None


async def test_circuit_opens_after_consecutive_failures_and_fails_fast_without_calling() -> None:
    clock = FakeClock()
    breaker, dep = make_breaker(clock), Dependency()
    await trip(breaker, dep)
    assert dep.calls == 3
    assert breaker.opened_at == clock.now

    dep.failing = False
    with pytest.raises(Unavailable) as raised:
        await breaker.call(dep.query)
    assert dep.calls == 3, "an open circuit must not reach the dependency"
    assert raised.value.code == "unavailable"
    assert raised.value.message == "the database is unavailable (circuit open, retrying in 10s)"
    assert raised.value.details == {"dependency": "database", "retry_after_seconds": 10}


async def test_open_circuit_message_counts_down_to_the_probe() -> None:
    clock = FakeClock()
    breaker, dep = make_breaker(clock), Dependency()
    await trip(breaker, dep)
    clock.advance(6.5)
    with pytest.raises(Unavailable, match=r"retrying in 4s"):
        await breaker.call(dep.query)
    assert breaker.state is BreakerState.OPEN


async def test_errors_not_classified_as_infrastructure_never_open_the_circuit() -> None:
    breaker = make_breaker(FakeClock())

    async def missing() -> None:
        raise NotFound("no such session")

    for _ in range(10):
        with pytest.raises(NotFound):
            await breaker.call(missing)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0


async def test_an_answer_from_the_dependency_resets_the_consecutive_failure_count() -> None:
    breaker, dep = make_breaker(FakeClock()), Dependency()
    for _ in range(5):
        dep.failing = True
        for _ in range(2):
            with pytest.raises(DatabaseDown):
                await breaker.call(dep.query)
        dep.failing = False
        assert await breaker.call(dep.query, "ok") == "ok"
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.failures == 10


async def test_after_the_reset_timeout_a_successful_probe_closes_the_circuit() -> None:
    clock = FakeClock()
    breaker, dep = make_breaker(clock), Dependency()
    await trip(breaker, dep)
    clock.advance(10.0)
    assert breaker.state is BreakerState.HALF_OPEN

    dep.failing = False
    assert await breaker.call(dep.query, "back") == "back"
    assert breaker.state is BreakerState.CLOSED
    assert breaker.opened_at is None
    assert breaker.consecutive_failures == 0
    assert await breaker.call(dep.query, "again") == "again"


async def test_a_failed_probe_opens_the_circuit_for_another_full_timeout() -> None:
    clock = FakeClock()
    breaker, dep = make_breaker(clock), Dependency()
    await trip(breaker, dep)
    clock.advance(12.0)

    with pytest.raises(DatabaseDown):
        await breaker.call(dep.query)
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened_at == clock.now
    assert breaker.times_opened == 2
    calls = dep.calls

    clock.advance(9.9)
    with pytest.raises(Unavailable, match=r"circuit open, retrying in 1s"):
        await breaker.call(dep.query)
    assert dep.calls == calls


async def test_only_one_probe_runs_at_a_time_and_concurrent_callers_fail_fast() -> None:
    clock = FakeClock()
    breaker, dep = make_breaker(clock), Dependency()
    await trip(breaker, dep)
    clock.advance(10.0)
    dep.failing = False

    release = Event()
    probe_started = Event()
    probe_result: list[str] = []

    async def slow_probe() -> str:
        probe_started.set()
        await release.wait()
        return await dep.query("probe")

    async def run_probe() -> None:
        probe_result.append(await breaker.call(slow_probe))

    rejected: list[Unavailable] = []

    async def concurrent_caller() -> None:
        try:
            await breaker.call(dep.query, "sneaked through")
        except Unavailable as exc:
            rejected.append(exc)

    with fail_after(5):
        async with create_task_group() as tg:
            tg.start_soon(run_probe)
            await probe_started.wait()
            for _ in range(8):
                tg.start_soon(concurrent_caller)
            await wait_all_tasks_blocked()
            assert len(rejected) == 8
            assert dep.calls == 3, "no caller may reach the dependency while the probe runs"
            assert breaker.state is BreakerState.HALF_OPEN
            release.set()

    assert probe_result == ["probe"]
    assert {exc.message for exc in rejected} == {
        "the database is unavailable (circuit half-open, a recovery probe is in progress)"
    }
    assert breaker.state is BreakerState.CLOSED
    assert breaker.rejections == 8
    assert await breaker.call(dep.query, "after") == "after"


async def test_callers_during_a_failing_probe_fail_fast_and_the_circuit_reopens() -> None:
    clock = FakeClock()
    breaker, dep = make_breaker(clock), Dependency()
    await trip(breaker, dep)
    clock.advance(10.0)

    release = Event()
    outcomes: list[str] = []

    async def failing_probe() -> str:
        await release.wait()
        return await dep.query()

    async def run_probe() -> None:
        with pytest.raises(DatabaseDown):
            await breaker.call(failing_probe)
        outcomes.append("probe failed")

    async def caller() -> None:
        with pytest.raises(Unavailable, match="probe is in progress"):
            await breaker.call(dep.query)
        outcomes.append("rejected")

    with fail_after(5):
        async with create_task_group() as tg:
            tg.start_soon(run_probe)
            await wait_all_tasks_blocked()
            tg.start_soon(caller)
            tg.start_soon(caller)
            await wait_all_tasks_blocked()
            release.set()

    assert sorted(outcomes) == ["probe failed", "rejected", "rejected"]
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened_at == clock.now
    with pytest.raises(Unavailable, match="circuit open"):
        await breaker.call(dep.query)


async def test_a_cancelled_probe_lets_the_next_caller_probe() -> None:
    clock = FakeClock()
    breaker, dep = make_breaker(clock), Dependency()
    await trip(breaker, dep)
    clock.advance(10.0)
    dep.failing = False

    async def hanging_probe() -> str:
        await Event().wait()
        return "never"

    with fail_after(5):
        async with create_task_group() as tg:
            tg.start_soon(breaker.call, hanging_probe)
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()

    assert breaker.state is BreakerState.HALF_OPEN
    assert await breaker.call(dep.query, "second probe") == "second probe"
    assert breaker.state is BreakerState.CLOSED


async def test_a_call_admitted_before_the_circuit_opened_does_not_close_it() -> None:
    breaker, dep = make_breaker(FakeClock()), Dependency()
    release = Event()

    async def slow_success() -> str:
        await release.wait()
        return "late"

    results: list[str] = []

    async def run_slow() -> None:
        results.append(await breaker.call(slow_success))

    with fail_after(5):
        async with create_task_group() as tg:
            tg.start_soon(run_slow)
            await wait_all_tasks_blocked()
            await trip(breaker, dep)
            release.set()

    assert results == ["late"]
    assert breaker.state is BreakerState.OPEN


async def test_stats_snapshot_reports_state_and_counters() -> None:
    clock = FakeClock()
    breaker, dep = make_breaker(clock, threshold=2), Dependency()
    await trip(breaker, dep)
    for _ in range(3):
        with pytest.raises(Unavailable):
            await breaker.call(dep.query)

    stats = breaker.stats()
    assert stats.name == "database"
    assert stats.state is BreakerState.OPEN
    assert stats.opened_at == clock.now
    assert (stats.failures, stats.rejections, stats.times_opened, stats.consecutive_failures) == (2, 3, 1, 2)
    assert stats.state.value == "open"


async def test_description_names_the_dependency_in_the_error() -> None:
    breaker = CircuitBreaker("redis", description="the Redis cache", failure_threshold=1, clock=FakeClock())

    async def down() -> None:
        raise ConnectionRefusedError

    with pytest.raises(ConnectionRefusedError):
        await breaker.call(down)
    with pytest.raises(Unavailable, match=r"^the Redis cache is unavailable \(circuit open"):
        await breaker.call(down)


def test_nonsensical_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("database", failure_threshold=0)
    with pytest.raises(ValueError, match="reset_timeout"):
        CircuitBreaker("database", reset_timeout=0)
