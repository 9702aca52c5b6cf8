"""Resource subscriptions in one server process: both protocol eras, what is refused, and the bounds.

The feed under test is the one the container builds for the backend (local on SQLite, LISTEN/NOTIFY
on PostgreSQL); its receiver runs beside the client, as `handoff serve` runs it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from mcp.client import Client
from mcp.server.subscriptions import ResourcesListChanged
from mcp.shared.exceptions import MCPError

from handoff.config import Settings
from handoff.container import Container
from handoff.mcp.server import build_server
from tests.conftest import structured
from tests.e2e.notices import LIST_CHANGED, append, legacy_client, next_update, subscribe, unsubscribe

pytestmark = pytest.mark.anyio

CONTEXT = "handoff://sessions/job-1/context"


@pytest.fixture
async def feed(container: Container) -> AsyncIterator[Container]:
    """The container with its change feed receiving, as the server runs it."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(container.changes.run)
        yield container
        tg.cancel_scope.cancel()


async def register(client: Client, key: str = "job-1", agent: str = "lead") -> None:
    structured(await client.call_tool("register_session", {"session_key": key, "source_agent": agent}))


async def test_a_subscriber_hears_its_own_append_and_another_clients(feed: Container) -> None:
    server = build_server(feed)
    async with legacy_client(server) as (watcher, inbox), Client(server) as other:
        await register(watcher)
        await subscribe(watcher, CONTEXT)
        await append(watcher, "job-1", "mine")
        await inbox.wait_for(CONTEXT)
        inbox.take()
        await append(other, "job-1", "theirs")
        await inbox.wait_for(CONTEXT)


async def test_a_new_session_is_a_list_change_for_every_2025_connection(feed: Container) -> None:
    server = build_server(feed)
    async with legacy_client(server) as (watcher, inbox), Client(server) as other:
        await watcher.list_resources()  # any request: the connection is now known, without subscribing
        await register(other, "job-2")
        await inbox.wait_for(LIST_CHANGED)


async def test_unsubscribe_stops_the_notices_for_that_uri_only(feed: Container) -> None:
    server = build_server(feed)
    async with legacy_client(server) as (watcher, inbox):
        await register(watcher, "job-1")
        await register(watcher, "job-2")
        other = "handoff://sessions/job-2"
        await subscribe(watcher, CONTEXT)
        await subscribe(watcher, other)
        await unsubscribe(watcher, CONTEXT)
        inbox.take()
        await append(watcher, "job-1")  # committed first: its notice, if any, would come first
        await append(watcher, "job-2")
        await inbox.wait_for(other)
        assert CONTEXT not in inbox.received


async def test_handoff_and_inbox_subscribers_hear_the_request_and_the_answer(feed: Container) -> None:
    server = build_server(feed)
    async with legacy_client(server) as (watcher, inbox):
        await register(watcher)
        inbox_uri = "handoff://agents/codex/inbox"
        await subscribe(watcher, inbox_uri)
        made = structured(await watcher.call_tool("request_handoff", {"session_key": "job-1", "target_agent": "codex"}))
        handoff_uri = f"handoff://handoffs/{made['handoff']['handoff_id']}"
        await inbox.wait_for(inbox_uri)
        await subscribe(watcher, handoff_uri)
        inbox.take()
        structured(
            await watcher.call_tool("accept_handoff", {"handoff_id": made["handoff"]["handoff_id"], "agent": "codex"})
        )
        await inbox.wait_for(handoff_uri)
        await inbox.wait_for(inbox_uri)  # accepted: no longer pending, so the inbox changed too


async def test_a_2026_client_listens_for_updates_and_list_changes(feed: Container) -> None:
    server = build_server(feed)
    async with Client(server) as client:
        assert client.protocol_version == "2026-07-28"
        await register(client)
        async with client.listen(resource_subscriptions=[CONTEXT], resources_list_changed=True) as stream:
            assert stream.honored.resource_subscriptions == [CONTEXT]
            await append(client, "job-1")
            await next_update(stream, CONTEXT)
            await register(client, "job-2")
            with anyio.fail_after(5):
                async for event in stream:
                    if isinstance(event, ResourcesListChanged):
                        break


@pytest.mark.parametrize(
    ("uri", "code"),
    [
        ("test://watched-resource", "not_found"),
        ("handoff://sessions/nobody-has-this", "not_found"),
        ("handoff://handoffs/0123456789abcdef", "not_found"),
        ("handoff://sessions/job-1/nothing", "not_found"),
        ("handoff://sessions/bad key", "invalid_input"),
    ],
)
async def test_a_uri_that_is_not_a_readable_resource_is_refused_with_its_reason(
    feed: Container, uri: str, code: str
) -> None:
    server = build_server(feed)
    async with legacy_client(server) as (client, _):
        await register(client)
        with pytest.raises(MCPError) as refused:
            await subscribe(client, uri)
        assert refused.value.error.data["code"] == code
    async with Client(server) as modern:
        with pytest.raises(MCPError) as refused:
            async with modern.listen(resource_subscriptions=[uri]):
                pass
        assert refused.value.error.data["code"] == code


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_subscriptions_per_connection_are_capped_and_go_with_the_connection(settings: Settings) -> None:
    settings.notify.max_subscriptions_per_connection = 2
    async with Container.build(settings) as container:
        server = build_server(container)
        registry = server.subscriptions  # type: ignore[attr-defined]
        async with legacy_client(server) as (client, _):
            for key in ("a", "b", "c"):
                await register(client, key)
            await subscribe(client, "handoff://sessions/a")
            await subscribe(client, "handoff://sessions/a")  # the same URI again holds no second place
            await subscribe(client, "handoff://sessions/b/context")
            with pytest.raises(MCPError) as refused:
                await subscribe(client, "handoff://sessions/c")
            assert refused.value.error.data["code"] == "invalid_input"
            assert refused.value.error.data["limit"] == 2
            assert registry.connections == 1
        assert registry.connections == 0
        assert registry.watched == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_off_advertises_nothing_and_serves_no_subscriptions(settings: Settings) -> None:
    settings.notify.backend = "off"
    async with Container.build(settings) as container:
        server = build_server(container)
        async with legacy_client(server) as (client, _):
            resources = client.server_capabilities.resources
            assert resources is not None and not resources.subscribe and not resources.list_changed
            with pytest.raises(MCPError):
                await subscribe(client, "handoff://sessions")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_on_the_capabilities_say_subscribe_and_list_changed_for_resources_only(settings: Settings) -> None:
    async with Container.build(settings) as container:
        server = build_server(container)
        async with legacy_client(server) as (client, _), Client(server) as modern:
            for capabilities in (client.server_capabilities, modern.server_capabilities):
                resources, tools, prompts = capabilities.resources, capabilities.tools, capabilities.prompts
                assert resources is not None and resources.subscribe and resources.list_changed
                assert tools is not None and not tools.list_changed
                assert prompts is not None and not prompts.list_changed


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_subscriber_that_never_takes_its_notices_holds_up_no_append_and_no_other_subscriber(
    feed: Container,
) -> None:
    server = build_server(feed)
    registry = server.subscriptions  # type: ignore[attr-defined]
    async with legacy_client(server) as (stuck, _):
        await register(stuck)
        await subscribe(stuck, CONTEXT)
        (stuck_subscriber,) = registry._subscribers
        stalled = anyio.Event()

        async def never_returns(*_: object, **__: object) -> None:
            stalled.set()
            await anyio.sleep_forever()

        # The stuck client's channel accepts nothing: its sender waits (bounded) on the first notice.
        stuck_subscriber.connection.notify = never_returns
        async with legacy_client(server) as (watcher, inbox):
            await subscribe(watcher, CONTEXT)
            with anyio.fail_after(5):
                for i in range(50):
                    await append(watcher, "job-1", f"entry {i}")
                    await inbox.wait_for(CONTEXT)
                    inbox.take()
                await stalled.wait()
            # What waits for the stuck client is one URI, however many appends it missed.
            assert list(stuck_subscriber.pending) == [CONTEXT]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_after_its_listen_connection_is_killed_a_replica_listens_again(feed: Container) -> None:
    import asyncpg

    from tests.conftest import POSTGRES_URL

    assert POSTGRES_URL is not None
    channel = feed.changes.channel  # type: ignore[attr-defined]
    server = build_server(feed)
    async with legacy_client(server) as (watcher, inbox):
        await register(watcher)
        await subscribe(watcher, CONTEXT)
        await append(watcher, "job-1")
        await inbox.wait_for(CONTEXT)  # the LISTEN connection is up
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query ILIKE 'LISTEN%' AND position($1 in query) > 0",
                channel,
            )
        finally:
            await admin.close()
        assert killed == 1
        inbox.take()
        with anyio.fail_after(15):  # reconnects after a short pause; notices sent meanwhile are missed
            while CONTEXT not in inbox.received:
                await append(watcher, "job-1")
                with anyio.move_on_after(0.5):
                    await inbox.wait_for(CONTEXT)
