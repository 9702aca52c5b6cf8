"""Resumable streams: store the events of a response as they are sent, replay them after a given one.

Events live in the database, not in the process: whichever replica serves the reconnect reads what
the one that wrote them committed. Each stream is bounded (its newest `max_events_per_stream`), all
of them together by `max_total_bytes` and by age (`retention_seconds`), enforced by the
`expire_stream_events` job (services/lifecycle.py) and, for age, by every read as well.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from handoff.config import StreamSettings
from handoff.domain.streams import StoredEvent, StreamOwner, StreamPosition, format_event_id, parse_event_id
from handoff.services.ports import Clock, NoRetry, Retrier, UnitOfWorkFactory


class StreamService:
    def __init__(
        self, uow: UnitOfWorkFactory, clock: Clock, settings: StreamSettings, retry: Retrier | None = None
    ) -> None:
        self._uow = uow
        self._clock = clock
        self.settings = settings
        self._retry = retry or NoRetry()

    async def append(
        self, owner: StreamOwner, stream_key: str, stream_id: str, payload: str | None, *, stored_before: int
    ) -> str:
        """Store one event of a stream (`stored_before` events of it were stored already) and return its id.

        Past the per-stream bound the oldest events go, in the same transaction: a long stream of
        progress notifications cannot crowd out the response that ends it.
        """
        size = 0 if payload is None else len(payload.encode())
        async with self._uow(write=True) as uow:
            now = self._clock.now()
            row_id = await uow.streams.add(
                stream_key=stream_key, stream_id=stream_id, owner=owner, payload=payload, size=size, now=now
            )
            if stored_before >= self.settings.max_events_per_stream:
                await uow.streams.trim_stream(stream_key, keep=self.settings.max_events_per_stream)
            await uow.commit()
        return format_event_id(stream_key, row_id)

    async def locate(self, owner: StreamOwner, last_event_id: str) -> StreamPosition | None:
        """Where `last_event_id` is, or None when it is not an id we minted, or names a stream that
        `owner` did not write or that has expired: such an id replays nothing."""
        parsed = parse_event_id(last_event_id)
        if parsed is None:
            return None
        stream_key, after_id = parsed

        async def read() -> str | None:
            async with self._uow(write=False) as uow:
                return await uow.streams.find_stream(stream_key, owner, since=self._since())

        stream_id = await self._retry.call(read)
        return None if stream_id is None else StreamPosition(stream_id, stream_key, after_id)

    async def events_after(self, owner: StreamOwner, position: StreamPosition) -> list[StoredEvent]:
        """The events of the stream at `position` stored after it, oldest first."""

        async def read() -> list[tuple[int, str | None]]:
            async with self._uow(write=False) as uow:
                return await uow.streams.list_after(
                    position.stream_key,
                    owner,
                    after_id=position.after_id,
                    since=self._since(),
                    limit=self.settings.max_events_per_stream,
                )

        rows = await self._retry.call(read)
        return [StoredEvent(format_event_id(position.stream_key, i), p) for i, p in rows]

    def _since(self) -> datetime:
        return self._clock.now() - timedelta(seconds=self.settings.retention_seconds)
