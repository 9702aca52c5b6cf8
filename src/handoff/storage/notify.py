"""Change notices over PostgreSQL LISTEN/NOTIFY.

Units of work send NOTIFY inside their transaction (storage/uow.py), so a notice goes out only
when the change commits, and in commit order. Each replica holds one connection that LISTENs on the
channel and hands what arrives to its listeners; when that connection drops it reconnects with a
growing pause (notices sent meanwhile are missed: a hint, not a record).

The channel is per schema, so replicas sharing a schema hear each other and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from handoff.cache.feeds import Listeners
from handoff.domain.notices import Change, decode
from handoff.logs import get_logger
from handoff.services.ports import ChangeListener

log = get_logger(__name__)

RECONNECT_MIN_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 5.0
PROBE_SECONDS = 30.0
PROBE_TIMEOUT_SECONDS = 5.0


def channel_name(schema: str | None) -> str:
    """At most 63 bytes (PostgreSQL truncates identifiers); schema names are [a-z0-9_]."""
    return ("handoff_changes" + (f"_{schema}" if schema else ""))[:63]


class PostgresChangeFeed:
    backend = "postgres"

    def __init__(self, engine: AsyncEngine, channel: str) -> None:
        self.channel = channel
        self._engine = engine
        self._listeners = Listeners()
        self.listening = anyio.Event()  # set once the first LISTEN is in place

    def published(self, changes: Sequence[Change]) -> None:
        return None  # already sent: NOTIFY went out with the transaction

    def listen(self, listener: ChangeListener) -> Callable[[], None]:
        return self._listeners.listen(listener)

    async def run(self) -> None:
        pause = RECONNECT_MIN_SECONDS
        while True:
            try:
                await self._listen_once()
                pause = RECONNECT_MIN_SECONDS
            except Exception as error:  # this task's boundary: whatever broke the connection, reconnect
                log.warning("change notices: LISTEN connection lost; reconnecting", error=type(error).__name__)
            await anyio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX_SECONDS)

    async def _listen_once(self) -> None:
        # A pooled connection, held for as long as it listens (one per replica).
        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection  # asyncpg's Connection
            lost = anyio.Event()

            def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                self._listeners.deliver(decode(payload))

            def on_terminate(_conn: Any) -> None:
                lost.set()

            driver.add_termination_listener(on_terminate)
            await driver.add_listener(self.channel, on_notify)
            self.listening.set()
            try:
                while not lost.is_set():
                    with anyio.move_on_after(PROBE_SECONDS):
                        await lost.wait()
                    if not lost.is_set():  # a silently dead peer never terminates the connection
                        with anyio.fail_after(PROBE_TIMEOUT_SECONDS):
                            await driver.execute("SELECT 1")
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                    if not driver.is_closed():
                        await driver.remove_listener(self.channel, on_notify)
                driver.remove_termination_listener(on_terminate)
