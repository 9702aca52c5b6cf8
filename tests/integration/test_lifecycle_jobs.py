"""Lifecycle jobs on the real database, with time driven by an injected clock (no sleeps)."""

from __future__ import annotations

import anyio
import pytest
import sqlalchemy as sa

from handoff.config import Settings
from handoff.container import Container
from handoff.domain.models import SessionStatus
from handoff.errors import InvalidState, NotFound
from handoff.storage.tables import context_entries, sessions
from tests.unit.fakes import FakeClock

pytestmark = pytest.mark.anyio

DAY = 24 * 3600


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _container(settings: Settings, clock: FakeClock) -> Container:
    settings.lifecycle.idle_seconds = 60
    return Container.build(settings, clock=clock)


async def _status(c: Container, key: str) -> SessionStatus:
    return (await c.sessions.get(key)).session.status


async def _codecs(c: Container, key: str) -> set[str]:
    async with c.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(context_entries.c.content_codec)
            .join(sessions, sessions.c.id == context_entries.c.session_id)
            .where(sessions.c.session_key == key)
        )
        return {r[0] for r in rows}


async def test_a_session_walks_its_whole_life_and_every_step_is_an_event(settings: Settings, clock: FakeClock) -> None:
    async with _container(settings, clock) as c:
        await c.sessions.register("walk", "agent-a", {}, ttl_seconds=300)
        await c.context.append("walk", "message", "first words", {"role": "user"}, None, None)

        clock.advance(61)
        report = await c.lifecycle.run("mark_dormant")
        assert (report.examined, report.changed) == (1, 1)
        assert await _status(c, "walk") is SessionStatus.DORMANT

        await c.context.append("walk", "message", "back again " * 50, {}, None, None)  # reactivates
        assert await _status(c, "walk") is SessionStatus.ACTIVE

        clock.advance(301)  # TTL runs from the last activity
        assert (await c.lifecycle.run("expire")).changed == 1
        assert await _status(c, "walk") is SessionStatus.EXPIRED
        with pytest.raises(InvalidState, match="expired"):
            await c.context.append("walk", "message", "too late", {}, None, None)

        before = [e.content for e in (await c.context.page("walk", cursor=None, limit=10, context_types=None)).entries]
        clock.advance(7 * DAY + 1)  # standard policy: archived a week after it stopped
        assert (await c.lifecycle.run("archive")).changed == 1
        assert await _status(c, "walk") is SessionStatus.ARCHIVED
        assert await _codecs(c, "walk") == {"zlib"}  # stored compactly
        after = [e.content for e in (await c.context.page("walk", cursor=None, limit=10, context_types=None)).entries]
        assert after == before  # ...and still readable, byte for byte

        _, events = await c.sessions.lifecycle("walk")
        assert [(e.from_status, e.to_status) for e in events] == [
            (None, SessionStatus.ACTIVE),
            (SessionStatus.ACTIVE, SessionStatus.DORMANT),
            (SessionStatus.DORMANT, SessionStatus.ACTIVE),
            (SessionStatus.ACTIVE, SessionStatus.EXPIRED),
            (SessionStatus.EXPIRED, SessionStatus.ARCHIVED),
        ]
        assert [e.actor for e in events[1:]] == ["job:mark_dormant", "agent-a", "job:expire", "job:archive"]

        clock.advance(89 * DAY)
        assert (await c.lifecycle.run("purge")).changed == 0  # not yet: 90 days after archiving
        clock.advance(1 * DAY + 1)
        purge = await c.lifecycle.run("purge")
        assert purge.changed == 1 and purge.details["purged"] == ["walk"]
        with pytest.raises(NotFound):
            await c.sessions.get("walk")

        runs = await c.lifecycle.recent_runs(limit=10)
        assert [r["job"] for r in runs[:2]] == ["purge", "purge"]
        assert runs[0]["changed"] == 1 and runs[0]["examined"] == 1


async def test_legal_hold_is_never_purged_even_when_set_after_archiving(settings: Settings, clock: FakeClock) -> None:
    async with _container(settings, clock) as c:
        await c.sessions.register("held", "a", {}, ttl_seconds=10, retention_policy="legal_hold")
        await c.sessions.register("late-hold", "a", {}, ttl_seconds=10, retention_policy="short")
        for key in ("held", "late-hold"):
            await c.context.append(key, "message", "evidence", {}, None, None)
        clock.advance(11)
        await c.lifecycle.run("expire")
        clock.advance(8 * DAY)
        assert (await c.lifecycle.run("archive")).changed == 2
        await c.sessions.set_retention("late-hold", "legal_hold", "compliance-officer")
        clock.advance(3650 * DAY)
        assert (await c.lifecycle.run("purge")).changed == 0
        for key in ("held", "late-hold"):
            page = await c.context.page(key, cursor=None, limit=10, context_types=None)
            assert [e.content for e in page.entries] == ["evidence"]
        _, events = await c.sessions.lifecycle("late-hold")
        assert events[-1].reason == "retention policy short -> legal_hold" and events[-1].actor == "compliance-officer"


async def test_an_append_racing_an_expiry_either_lands_or_is_refused_never_both(
    settings: Settings, clock: FakeClock
) -> None:
    async with _container(settings, clock) as c:
        keys = [f"race-{i}" for i in range(20)]
        for key in keys:
            await c.sessions.register(key, "a", {}, ttl_seconds=100)
        clock.advance(100)  # every session is exactly at its deadline
        outcomes: dict[str, str] = {}

        async def append(key: str) -> None:
            try:
                await c.context.append(key, "message", "racing", {}, None, None)
                outcomes[key] = "landed"
            except InvalidState:
                outcomes[key] = "refused"

        async with anyio.create_task_group() as tg:
            tg.start_soon(c.lifecycle.run, "expire")
            for key in keys:
                tg.start_soon(append, key)
        for key in keys:
            view = await c.sessions.get(key)
            # Whichever commits first wins: the append (then the session holds its entry) or the
            # expiry (then the append was refused). Never an acknowledged entry in a session the
            # caller was told had expired, nor a refused one that was stored anyway.
            assert view.session.entry_count == (1 if outcomes[key] == "landed" else 0)
            if outcomes[key] == "refused":
                assert view.session.status is SessionStatus.EXPIRED
        # And nothing acknowledged is ever lost by the later jobs: purge only removes whole sessions.
        clock.advance(200 * DAY)
        await c.lifecycle.run("expire")
        await c.lifecycle.run("archive")
        clock.advance(91 * DAY)
        await c.lifecycle.run("purge")
        for key in keys:
            with pytest.raises(NotFound):
                await c.sessions.get(key)


async def test_purging_many_sessions_works_in_small_transactions_while_appends_go_on(
    settings: Settings, clock: FakeClock
) -> None:
    settings.lifecycle.batch_size = 7
    settings.lifecycle.chunk_rows = 5
    async with _container(settings, clock) as c:
        for i in range(40):
            key = f"old-{i}"
            await c.sessions.register(key, "a", {}, ttl_seconds=10, retention_policy="short")
            for n in range(12):  # more entries than one delete chunk
                await c.context.append(key, "tool_call", f"output {n}", {"tool": "pytest"}, None, None)
            await c.sessions.complete(key, None)
        await c.sessions.register("live", "a", {}, ttl_seconds=300 * DAY)
        clock.advance(2 * DAY)
        assert (await c.lifecycle.run("archive")).changed == 40
        clock.advance(8 * DAY)
        appended = 0

        async def keep_appending() -> None:
            nonlocal appended
            for n in range(30):
                await c.context.append("live", "message", f"still working {n}", {}, None, None)
                appended += 1
                await anyio.sleep(0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(keep_appending)
            report = await c.lifecycle.run("purge")
        assert report.changed == 40 and report.errors == 0
        assert appended == 30
        assert (await c.sessions.get("live")).session.entry_count == 30
        async with c.engine.connect() as conn:
            left = (await conn.execute(sa.select(sa.func.count()).select_from(context_entries))).scalar()
        assert left == 30


async def test_repair_fixes_counters_out_of_step_and_rebuilds_the_digest(settings: Settings, clock: FakeClock) -> None:
    async with _container(settings, clock) as c:
        await c.sessions.register("skewed", "a", {}, None)
        for text in ("Decision: use WAL", "TODO: write docs", "third"):
            await c.context.append("skewed", "message", text, {}, None, None)
        async with c.engine.begin() as conn:  # what a crash mid-way in an older version might leave
            await conn.execute(
                sessions.update().where(sessions.c.session_key == "skewed").values(entry_count=1, digest="{}")
            )
        report = await c.lifecycle.run("repair")
        assert report.details["counters_fixed"] == [{"session_key": "skewed", "was": 1, "now": 3}]
        view = await c.sessions.get("skewed")
        assert view.session.entry_count == 3 and view.counts_by_type == {"message": 3}
        handoff = await c.handoffs.request("skewed", "b", "context_transfer", {}, None)
        assert "use WAL" in handoff.handoff.brief and "write docs" in handoff.handoff.brief
        appended = await c.context.append("skewed", "message", "fourth", {}, "a", None)
        assert appended.entry.sequence_number == 4  # the sequence continues without a gap


async def test_only_one_replica_runs_a_job_at_a_time(settings: Settings, clock: FakeClock) -> None:
    async with _container(settings, clock) as first, _container(settings, clock) as second:
        assert first.job_lock is not None
        async with first.job_lock.hold("expire"):
            assert await second.jobs.run_once("expire") is None
        report = await second.jobs.run_once("expire")
        assert report is not None and report.job == "expire"
        # The skipped run and the real one are both counted for the operator.
        registry = second.metrics.registry
        for outcome in ("skipped", "ok"):
            labels = {"job": "expire", "outcome": outcome}
            assert registry.get_sample_value("handoff_job_runs_total", labels) == 1
