"""The in-process change feed, and the listener fan-out every feed shares.

`LocalChangeFeed` is what a single process needs (stdio, one HTTP replica, or SQLite without
Redis): a change committed here is heard here. Writers only enqueue (`published` never waits), and
the feed's own task calls the listeners, so a slow subscriber can never hold up an append. The
queue is bounded: when it is full the batch is dropped and counted, since a notice is a hint to
read again and the data itself is safe in the database.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

import anyio

from handoff.domain.notices import Change
from handoff.logs import get_logger
from handoff.services.ports import ChangeListener

log = get_logger(__name__)

QUEUE_BATCHES = 10_000
LOG_INTERVAL_SECONDS = 60.0


class Listeners:
    """Who hears the changes a feed receives; one failing listener never starves the others."""

    def __init__(self) -> None:
        self._listeners: dict[object, ChangeListener] = {}
        self.delivered = 0

    def listen(self, listener: ChangeListener) -> Callable[[], None]:
        token = object()  # the same callable may be registered twice
        self._listeners[token] = listener

        def stop() -> None:
            self._listeners.pop(token, None)

        return stop

    def deliver(self, changes: Sequence[Change]) -> None:
        for change in changes:
            self.delivered += 1
            for listener in list(self._listeners.values()):
                try:
                    listener(change)
                except Exception:  # the fan-out boundary: isolate listeners from each other
                    log.exception("change listener failed")


class DropCounter:
    """Counts what a bounded queue had to drop; logs it at most once a minute."""

    def __init__(self, what: str) -> None:
        self._what = what
        self.dropped = 0
        self._logged_at = float("-inf")
        self._unlogged = 0

    def drop(self, count: int) -> None:
        self.dropped += count
        self._unlogged += count
        now = time.monotonic()
        if now - self._logged_at >= LOG_INTERVAL_SECONDS:
            log.warning("change notices dropped", queue=self._what, dropped=self._unlogged)
            self._logged_at, self._unlogged = now, 0


class Outbox:
    """Batches of changes waiting for a feed's task: bounded, and never a wait for the writer."""

    def __init__(self, what: str, capacity: int = QUEUE_BATCHES) -> None:
        self._batches: deque[Sequence[Change]] = deque()
        self._capacity = capacity
        self._ready = anyio.Event()
        self.drops = DropCounter(what)

    def put(self, changes: Sequence[Change]) -> None:
        if len(self._batches) >= self._capacity:
            self.drops.drop(len(changes))
            return
        self._batches.append(tuple(changes))
        self._ready.set()

    async def get(self) -> Sequence[Change]:
        while not self._batches:
            await self._ready.wait()
            self._ready = anyio.Event()
        return self._batches.popleft()


class LocalChangeFeed:
    backend = "local"

    def __init__(self, queue_batches: int = QUEUE_BATCHES) -> None:
        self._listeners = Listeners()
        self.outbox = Outbox("local", queue_batches)

    def published(self, changes: Sequence[Change]) -> None:
        self.outbox.put(changes)

    def listen(self, listener: ChangeListener) -> Callable[[], None]:
        return self._listeners.listen(listener)

    async def run(self) -> None:
        while True:
            self._listeners.deliver(await self.outbox.get())


class NoChangeFeed:
    """Notifications switched off (HANDOFF_NOTIFY__BACKEND=off): nothing is sent or heard."""

    backend = "off"

    def published(self, changes: Sequence[Change]) -> None:
        return None

    def listen(self, listener: ChangeListener) -> Callable[[], None]:
        return lambda: None

    async def run(self) -> None:
        await anyio.sleep_forever()
