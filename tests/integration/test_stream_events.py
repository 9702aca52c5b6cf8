"""Stored stream events on the real database: bounded per stream and in total, expiring, and readable
only by the session and agent that wrote them. Time comes from an injected clock."""

from __future__ import annotations

import json

import anyio
import pytest
import sqlalchemy as sa
from mcp.server.streamable_http import EventMessage
from mcp_types import JSONRPCNotification, JSONRPCResponse

from handoff.config import Settings
from handoff.container import Container
from handoff.domain.streams import NewStreamEvent, StreamOwner, fingerprint, format_event_id, new_stream_key
from handoff.http.streams import SessionEventStore
from handoff.storage.tables import stream_events
from handoff.storage.uow import AsyncUnitOfWorkFactory, SqliteUnitOfWorkFactory
from tests.unit.fakes import FakeClock

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
OWNER = StreamOwner(fingerprint("session-1"), None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _rows(c: Container) -> list[tuple[str, int]]:
    async with c.engine.connect() as conn:
        rows = await conn.execute(sa.select(stream_events.c.stream_key, stream_events.c.seq).order_by("id"))
        return [(r[0], int(r[1])) for r in rows]


async def _append(c: Container, key: str, payloads: list[str | None], owner: StreamOwner = OWNER) -> list[str]:
    """Store a stream's events as the HTTP transport does (the writer task is not running here, so
    each is stored before `append` returns) and return their ids."""
    stored: list[int] = []
    for seq, payload in enumerate(payloads):
        await c.streams.append(NewStreamEvent(owner, key, "7", seq, payload), lambda: stored.append(1))
    assert len(stored) == len(payloads)
    return [format_event_id(key, seq) for seq in range(len(payloads))]


async def test_events_older_than_the_retention_replay_nothing_and_the_job_deletes_them(
    settings: Settings, clock: FakeClock
) -> None:
    settings.streams.retention_seconds = 60
    async with Container.build(settings, clock=clock) as c:
        old_key, new_key = new_stream_key(), new_stream_key()
        old = await _append(c, old_key, [None, '{"a":1}'])
        clock.advance(45)
        new = await _append(c, new_key, [None, '{"b":2}'])
        clock.advance(30)  # the first stream is 75 s old, the second 30 s

        assert await c.streams.locate(OWNER, old[0]) is None  # expired on read, before any job ran
        position = await c.streams.locate(OWNER, new[0])
        assert position is not None
        assert [e.payload for e in await c.streams.events_after(OWNER, position)] == ['{"b":2}']

        report = await c.lifecycle.run("expire_stream_events")
        assert report.details["expired"] == 2
        assert {key for key, _ in await _rows(c)} == {new_key}


async def test_a_stream_keeps_its_newest_events_and_a_replay_from_a_trimmed_one_still_ends_with_the_answer(
    settings: Settings,
) -> None:
    settings.streams.max_events_per_stream = 5
    async with Container.build(settings) as c:
        key = new_stream_key()
        ids = await _append(c, key, [None] + [f'{{"n":{n}}}' for n in range(1, 11)] + ['{"answer":true}'])
        rows = await _rows(c)
        assert len(rows) == 5
        assert [f"{k}.{i}" for k, i in rows] == ids[-5:]

        position = await c.streams.locate(OWNER, ids[0])  # its own row is gone; the stream is not
        assert position is not None
        replayed = [e.payload for e in await c.streams.events_after(OWNER, position)]
        assert replayed == ['{"n":7}', '{"n":8}', '{"n":9}', '{"n":10}', '{"answer":true}']


async def test_all_streams_together_are_cut_to_the_byte_budget_oldest_first(settings: Settings) -> None:
    settings.streams.max_total_bytes = MIB
    async with Container.build(settings) as c:
        keys = [new_stream_key() for _ in range(6)]
        chunk = json.dumps({"blob": "x" * (300 * 1024)})
        for key in keys:
            await _append(c, key, [chunk])

        report = await c.lifecycle.run("expire_stream_events")

        assert report.details["over_budget"] == 3
        assert [key for key, _ in await _rows(c)] == keys[3:]  # 3 x 300 KiB fit in 1 MiB, 4 do not
        assert (await c.lifecycle.run("expire_stream_events")).changed == 0


async def test_another_session_or_another_agent_cannot_locate_a_stream(settings: Settings) -> None:
    async with Container.build(settings) as c:
        alice = StreamOwner(fingerprint("session-1"), "alice")
        [first] = await _append(c, new_stream_key(), [None], owner=alice)
        assert await c.streams.locate(alice, first) is not None
        assert await c.streams.locate(StreamOwner(fingerprint("session-2"), "alice"), first) is None
        assert await c.streams.locate(StreamOwner(fingerprint("session-1"), "mallory"), first) is None
        assert await c.streams.locate(StreamOwner(fingerprint("session-1"), None), first) is None
        for forged in ("", "1", "x" * 24 + ".0", "x" * 24 + ".-1", first + "0" * 30, first.replace(".", ":")):
            assert await c.streams.locate(alice, forged) is None, forged


async def test_an_answer_too_large_to_keep_is_replayed_as_an_error_saying_so(settings: Settings) -> None:
    settings.streams.max_event_bytes = 4096
    async with Container.build(settings) as c:
        store = SessionEventStore(c.streams, OWNER, is_live=lambda _: False)
        priming = await store.store_event("9", None)
        big = {"content": [{"type": "text", "text": "y" * 10_000}]}
        await store.store_event(
            "9", JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"data": "z" * 10_000})
        )
        await store.store_event("9", JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={}))
        await store.store_event("9", JSONRPCResponse(jsonrpc="2.0", id=9, result=big))

        sent: list[EventMessage] = []

        async def collect(event: EventMessage) -> None:
            sent.append(event)

        assert await store.replay_events_after(priming, collect) == "9"
        dumped = [e.message.model_dump(by_alias=True, exclude_unset=True) for e in sent]
        assert [d.get("method") for d in dumped] == ["notifications/progress", None]  # the big log line is left out
        assert dumped[1]["id"] == 9
        assert "HANDOFF_STREAMS__MAX_EVENT_BYTES" in dumped[1]["error"]["message"]


async def test_the_writer_stores_events_behind_the_caller_and_flushes_what_is_queued_on_the_way_out(
    settings: Settings,
) -> None:
    async with Container.build(settings) as c:
        key = new_stream_key()
        stored: list[int] = []
        with anyio.fail_after(30):
            async with c.streams.writer():
                for seq in range(600):  # more than one batch
                    event = NewStreamEvent(OWNER, key, "7", seq, f'{{"n":{seq}}}')
                    await c.streams.append(event, lambda seq=seq: stored.append(seq))
            # Leaving the block waited for the queue to be written.
        assert sorted(stored) == list(range(600))
        rows = await _rows(c)
        assert [seq for _, seq in rows] == list(range(600))


async def test_a_unit_that_need_not_be_durable_skips_the_disk_wait_and_gives_its_connection_back_as_it_was(
    settings: Settings,
) -> None:
    async with Container.build(settings) as c:
        sqlite = c.request_engine is not None
        factory = (
            SqliteUnitOfWorkFactory(c.request_engine)
            if c.request_engine is not None
            else AsyncUnitOfWorkFactory(c.engine)
        )
        probe = sa.text("PRAGMA synchronous" if sqlite else "SHOW synchronous_commit")
        fast, safe = ("1", "2") if sqlite else ("off", "on")  # SQLite: NORMAL / FULL

        async def setting(uow: object) -> str:
            return str((await uow.streams._db.execute(probe)).scalar())  # type: ignore[attr-defined]

        key = new_stream_key()
        for round_ in range(3):  # the pool hands the same connections out again
            async with factory(write=True, durable=False) as uow:
                assert await setting(uow) == fast
                await uow.streams.add_many([NewStreamEvent(OWNER, key, "7", round_, "{}")], now=FakeClock().now())
                await uow.commit()
            async with factory(write=True) as uow:
                assert await setting(uow) == safe
            async with factory(write=False) as uow:
                assert await setting(uow) == safe
        assert [seq for _, seq in await _rows(c)] == [0, 1, 2]
