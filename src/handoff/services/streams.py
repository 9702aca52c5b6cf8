"""Resumable streams: store the events of an answer as they are sent, replay them after a given one.

Events live in the database, not in the process: whichever replica serves the reconnect reads what
the one that wrote them committed. Each stream is bounded (its newest `max_events_per_stream`), all
of them together by `max_total_bytes` and by age (`retention_seconds`), enforced by the
`expire_stream_events` job (services/lifecycle.py) and, for age, by every read as well.

Writes are behind the answer, not in front of it: `append` queues an event (its id is already
known, see domain/streams.py) and a writer task stores what has queued up, many events to a
transaction, and then says so through `on_stored`. A replay first waits for the writes of its
stream (http/streams.py). When the writer is not running (a CLI command, a test), `append` writes
at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from handoff.config import StreamSettings
from handoff.domain.streams import NewStreamEvent, StoredEvent, StreamOwner, StreamPosition, parse_event_id
from handoff.domain.streams import format_event_id as event_id
from handoff.errors import HandoffError
from handoff.services.ports import Clock, NoRetry, Retrier, UnitOfWorkFactory

log = logging.getLogger(__name__)

OnStored = Callable[[], None]
QUEUE_CAPACITY = 4096  # events waiting for the writer; beyond it, senders wait (back-pressure)
BATCH_LIMIT = 256  # events per write transaction
# How long the writer gathers events before it writes them: one transaction for the answers of many
# calls instead of one per answer (which cost a sequential client about a fifth more per call).
# A replay of a stream waits for its events, so it waits at most this much longer.
BATCH_WINDOW_SECONDS = 0.05
SHUTDOWN_FLUSH_SECONDS = 5.0


class StreamService:
    def __init__(
        self, uow: UnitOfWorkFactory, clock: Clock, settings: StreamSettings, retry: Retrier | None = None
    ) -> None:
        self._uow = uow
        self._clock = clock
        self.settings = settings
        self._retry = retry or NoRetry()
        self._queue: MemoryObjectSendStream[tuple[NewStreamEvent, OnStored]] | None = None
        self._drained = anyio.Event()

    async def append(self, event: NewStreamEvent, on_stored: OnStored) -> None:
        """Store `event` (behind the caller when the writer runs); `on_stored` is called once it is
        stored, or given up on (a database failure is logged: that event will not replay)."""
        if self._queue is not None:
            await self._queue.send((event, on_stored))
            return
        await self._write([(event, on_stored)])

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[None]:
        """Run the writer for the duration of the block; on the way out, store what is still queued."""
        send, receive = anyio.create_memory_object_stream[tuple[NewStreamEvent, OnStored]](QUEUE_CAPACITY)
        self._drained = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._drain, receive)
            self._queue = send
            try:
                yield
            finally:
                self._queue = None
                send.close()  # the writer ends once it has stored what is left
                with anyio.move_on_after(SHUTDOWN_FLUSH_SECONDS, shield=True) as flushing:
                    await self._drained.wait()
                if flushing.cancelled_caught:
                    tg.cancel_scope.cancel()

    async def _drain(self, receive: MemoryObjectReceiveStream[tuple[NewStreamEvent, OnStored]]) -> None:
        try:
            async with receive:
                async for first in receive:
                    batch = [first]
                    with anyio.move_on_after(BATCH_WINDOW_SECONDS):
                        while len(batch) < BATCH_LIMIT:
                            try:
                                batch.append(await receive.receive())
                            except anyio.EndOfStream:  # shutting down: write what there is now
                                break
                    await self._write(batch)
        finally:
            self._drained.set()

    async def _write(self, batch: list[tuple[NewStreamEvent, OnStored]]) -> None:
        events = [event for event, _ in batch]
        keep = self.settings.max_events_per_stream
        # Past the per-stream bound the oldest events go, in the same transaction: a long stream of
        # progress notifications cannot crowd out the answer that ends it.
        newest: dict[str, int] = {}
        for event in events:
            newest[event.stream_key] = max(event.seq, newest.get(event.stream_key, -1))
        try:
            # Not durable: a replay buffer that a power cut empties loses nothing a client was
            # promised, and an fsync per answer would hold the write lock that appends wait for.
            async with self._uow(write=True, durable=False) as uow:
                await uow.streams.add_many(events, now=self._clock.now())
                for key, seq in newest.items():
                    if seq >= keep:
                        await uow.streams.trim_stream(key, up_to_seq=seq - keep)
                await uow.commit()
        except HandoffError as error:
            log.warning("stream events not stored", extra={"events": len(events), "reason": error.message})
        finally:
            for _, on_stored in batch:
                on_stored()

    async def locate(self, owner: StreamOwner, last_event_id: str) -> StreamPosition | None:
        """Where `last_event_id` is, or None when it is not an id we minted, or names a stream that
        `owner` did not write or that has expired: such an id replays nothing."""
        parsed = parse_event_id(last_event_id)
        if parsed is None:
            return None
        stream_key, after = parsed

        async def read() -> str | None:
            async with self._uow(write=False) as uow:
                return await uow.streams.find_stream(stream_key, owner, since=self._since())

        stream_id = await self._retry.call(read)
        return None if stream_id is None else StreamPosition(stream_id, stream_key, after)

    async def events_after(self, owner: StreamOwner, position: StreamPosition) -> list[StoredEvent]:
        """The events of the stream at `position` stored after it, in order."""

        async def read() -> list[tuple[int, str | None]]:
            async with self._uow(write=False) as uow:
                return await uow.streams.list_after(
                    position.stream_key,
                    owner,
                    after_seq=position.after_id,
                    since=self._since(),
                    limit=self.settings.max_events_per_stream,
                )

        rows = await self._retry.call(read)
        return [StoredEvent(event_id(position.stream_key, seq), payload) for seq, payload in rows]

    def _since(self) -> datetime:
        return self._clock.now() - timedelta(seconds=self.settings.retention_seconds)
