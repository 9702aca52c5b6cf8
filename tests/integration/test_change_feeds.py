"""The change feeds against real backends: a change is told only when its transaction commits, and
a feed on one "replica" hears what another sent (two containers on one database or one Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import pytest
from pydantic import SecretStr

from handoff.config import Settings
from handoff.container import Container
from handoff.domain.notices import Change
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.anyio


class Heard:
    def __init__(self) -> None:
        self.changes: list[Change] = []
        self._arrived = anyio.Event()

    def __call__(self, change: Change) -> None:
        self.changes.append(change)
        self._arrived.set()
        self._arrived = anyio.Event()

    async def first(self, timeout: float = 5.0) -> Change:
        with anyio.fail_after(timeout):
            while not self.changes:
                await self._arrived.wait()
        return self.changes[0]


@pytest.fixture
async def running(container: Container) -> AsyncIterator[Container]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(container.changes.run)
        await _until_listening(container)
        yield container
        tg.cancel_scope.cancel()


async def _until_listening(container: Container) -> None:
    ready = getattr(container.changes, "listening", None) or getattr(container.changes, "subscribed", None)
    if ready is not None:
        with anyio.fail_after(10):
            await ready.wait()


async def test_a_rolled_back_change_is_never_told_and_a_committed_one_is(running: Container) -> None:
    heard = Heard()
    running.changes.listen(heard)
    uow_factory = running.sessions._uow  # the same factory every service writes through
    async with uow_factory(write=True) as uow:
        uow.announce(Change.session("rolled-back"))
        # left without commit: rolled back
    async with uow_factory(write=True) as uow:
        uow.announce(Change.session("committed"))
        await uow.commit()
    # Notices arrive in commit order; the rolled-back one would have come first.
    assert await heard.first() == Change.session("committed")


async def test_the_backend_the_container_picks(container: Container, backend: str) -> None:
    assert container.changes.backend == ("local" if backend == "sqlite" else "postgres")


async def test_a_feed_hears_what_another_replica_on_the_same_database_or_redis_sent(
    settings: Settings, backend: str
) -> None:
    if backend == "sqlite":  # on SQLite only Redis carries notices between processes
        if not REDIS_URL:
            pytest.skip("set HANDOFF_TEST_REDIS_URL")
        settings.cache.redis_url = SecretStr(REDIS_URL)
        settings.cache.key_prefix = f"handoff-test:{uuid.uuid4().hex}:"
    async with Container.build(settings) as one, Container.build(settings) as two:
        assert one.changes.backend == ("redis" if backend == "sqlite" else "postgres")
        heard = Heard()
        two.changes.listen(heard)
        async with anyio.create_task_group() as tg:
            tg.start_soon(one.changes.run)
            tg.start_soon(two.changes.run)
            await _until_listening(one)
            await _until_listening(two)
            await one.sessions.register("from-one", "lead", {}, None)
            assert await heard.first() == Change.sessions()
            tg.cancel_scope.cancel()
