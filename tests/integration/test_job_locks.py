"""Background jobs run once across replicas: the lock helper on both backends."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import anyio
import pytest
import sqlalchemy as sa

from handoff.config import Settings
from handoff.container import Container
from handoff.storage.locks import PostgresAdvisoryLock, SqliteLease, lock_key

pytestmark = pytest.mark.anyio


async def test_only_one_holder_runs_a_job_until_it_lets_go(settings: Settings) -> None:
    # Two containers on one database stand for two replicas.
    async with Container.build(settings) as first, Container.build(settings) as second:
        assert first.job_lock is not None and second.job_lock is not None
        async with first.job_lock.hold("expire-sessions") as got_first:
            assert got_first is True
            async with second.job_lock.hold("expire-sessions") as got_second:
                assert got_second is False
            async with second.job_lock.hold("archive-sessions") as other_job:
                assert other_job is True  # locks are per job name
        async with second.job_lock.hold("expire-sessions") as after_release:
            assert after_release is True


async def test_concurrent_contenders_let_exactly_one_through(settings: Settings) -> None:
    replicas = [Container.build(settings) for _ in range(4)]
    await replicas[0].start()  # migrate once
    winners: list[int] = []
    tried = 0
    all_tried = anyio.Event()

    async def contend(index: int, replica: Container) -> None:
        nonlocal tried
        assert replica.job_lock is not None
        async with replica.job_lock.hold("purge") as acquired:
            if acquired:
                winners.append(index)
            tried += 1
            if tried == len(replicas):
                all_tried.set()
            await all_tried.wait()  # nobody lets go before everyone has tried

    try:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for i, replica in enumerate(replicas):
                    tg.start_soon(contend, i, replica)
    finally:
        for replica in replicas:
            await replica.close()
    assert len(winners) == 1


async def test_a_dead_postgres_holder_releases_its_lock(settings: Settings, backend: str) -> None:
    if backend != "postgres":
        pytest.skip("advisory locks are PostgreSQL's")
    async with Container.build(settings) as survivor, Container.build(settings) as doomed:
        assert isinstance(doomed.job_lock, PostgresAdvisoryLock) and survivor.job_lock is not None
        held = doomed.job_lock.hold("archive")
        assert await held.__aenter__() is True
        # The holder's connection dies (crash, kill -9): PostgreSQL ends its session and its locks.
        key = lock_key("archive") & 0xFFFFFFFFFFFFFFFF
        async with survivor.engine.connect() as conn:
            killed = await conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1"
                ),
                {"hi": key >> 32, "lo": key & 0xFFFFFFFF},
            )
            assert killed.scalar() is True
        with anyio.fail_after(10):
            while True:
                async with survivor.job_lock.hold("archive") as taken_over:
                    if taken_over:
                        break
                await anyio.sleep(0.05)
        with contextlib.suppress(Exception):  # the dead holder cannot unlock on a dead connection
            await held.__aexit__(None, None, None)


async def test_an_expired_sqlite_lease_can_be_taken_over(settings: Settings, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("leases are SQLite's")

    class Clock:
        def __init__(self) -> None:
            self.now_value = datetime(2026, 1, 1, tzinfo=UTC)

        def now(self) -> datetime:
            return self.now_value

    clock = Clock()
    async with Container.build(settings) as container:
        crashed = SqliteLease(container.engine, clock, ttl_seconds=60)
        successor = SqliteLease(container.engine, clock, ttl_seconds=60)
        assert await crashed._acquire("expire")  # and never releases: its process died
        async with successor.hold("expire") as acquired:
            assert acquired is False
        clock.now_value += timedelta(seconds=61)
        async with successor.hold("expire") as acquired:
            assert acquired is True
