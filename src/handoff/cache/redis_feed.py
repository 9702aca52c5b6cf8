"""Change notices over Redis pub/sub: every replica (and any process on the same Redis) hears them.

Writers only enqueue; this feed's task PUBLISHes after the commit, so a Redis that is slow or down
costs an append nothing (notices are dropped and counted, never retried for long: they are hints,
and a subscriber that missed one reads the resource again when it next looks). A second
connection SUBSCRIBEs and hands what arrives to the listeners; after a failure it reconnects with
a growing pause.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio
from redis.asyncio import Redis

from handoff.cache.feeds import Listeners, Outbox
from handoff.cache.redis_cache import REDIS_FAILURES
from handoff.domain.notices import Change, decode, encode
from handoff.logs import get_logger
from handoff.services.ports import ChangeListener

log = get_logger(__name__)

QUEUE_BATCHES = 10_000
MESSAGE_BYTES = 64 * 1024
RECONNECT_MIN_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 5.0
PING_SECONDS = 30.0


class RedisChangeFeed:
    backend = "redis"

    def __init__(self, url: str, channel: str, *, socket_timeout: float = 2.0) -> None:
        self.channel = channel
        self._url = url
        self._socket_timeout = socket_timeout
        self._listeners = Listeners()
        self.outbox = Outbox("redis", QUEUE_BATCHES)
        self.subscribed = anyio.Event()  # set once the first SUBSCRIBE is confirmed (tests, start-up)

    def published(self, changes: Sequence[Change]) -> None:
        self.outbox.put(changes)

    def listen(self, listener: ChangeListener) -> Callable[[], None]:
        return self._listeners.listen(listener)

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._publish_forever)
            tg.start_soon(self._subscribe_forever)

    async def _publish_forever(self) -> None:
        client = self._client()
        try:
            while True:
                changes = await self.outbox.get()
                for text in encode(changes, max_bytes=MESSAGE_BYTES):
                    try:
                        with anyio.fail_after(self._socket_timeout):
                            await client.publish(self.channel, text)
                    except REDIS_FAILURES as error:
                        self.outbox.drops.drop(len(changes))
                        log.debug("publishing a change notice failed", error=type(error).__name__)
        finally:
            with anyio.CancelScope(shield=True):
                await client.aclose()

    async def _subscribe_forever(self) -> None:
        pause = RECONNECT_MIN_SECONDS
        while True:
            client = self._client(timeout=None)  # reads wait as long as get_message says
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    self.subscribed.set()
                    pause = RECONNECT_MIN_SECONDS
                    awaiting_pong = False
                    while True:
                        wait = self._socket_timeout if awaiting_pong else PING_SECONDS
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
                        if message is None and awaiting_pong:
                            raise TimeoutError("Redis did not answer PING")  # a silently dead peer
                        if message is None:  # quiet for a while: check that Redis is still there
                            await pubsub.ping()
                            awaiting_pong = True
                        elif message.get("type") == "pong":
                            awaiting_pong = False
                        elif message.get("type") == "message":
                            self._listeners.deliver(decode(message["data"]))
            except REDIS_FAILURES as error:
                log.warning("change notices: Redis subscription lost; reconnecting", error=type(error).__name__)
            finally:
                with anyio.CancelScope(shield=True):
                    await client.aclose()
            await anyio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX_SECONDS)

    def _client(self, timeout: float | None = 2.0) -> Redis:
        return Redis.from_url(
            self._url, socket_timeout=timeout, socket_connect_timeout=self._socket_timeout, health_check_interval=30
        )
