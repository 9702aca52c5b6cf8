"""Change notifications the way users run the server: `handoff serve` over stdio and HTTP, and two
HTTP replicas on one PostgreSQL schema, with the notice carried by LISTEN/NOTIFY or by Redis pub/sub.

A change made through one process must reach a subscriber on another within a second.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from tests.conftest import POSTGRES_URL, REDIS_URL, drop_postgres_schema, structured
from tests.e2e.notices import Inbox, append, legacy_client, next_update, subscribe, unsubscribe
from tests.e2e.servers import ServerDatabase, http_server, stdio_params
from tests.e2e.test_auth import client_as, create_token

pytestmark = pytest.mark.anyio

CROSS_PROCESS_SECONDS = 1.0


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def redis_env() -> dict[str, str]:
    """A Redis of the test's own key prefix (so its channel), or skip (fail in CI)."""
    if not REDIS_URL:
        _missing("set HANDOFF_TEST_REDIS_URL to run the Redis notification tests")
    assert REDIS_URL is not None
    return {"HANDOFF_REDIS_URL": REDIS_URL, "HANDOFF_CACHE__KEY_PREFIX": f"handoff-test:{uuid.uuid4().hex}:"}


@pytest.fixture
def shared_schema() -> Iterator[ServerDatabase]:
    if not POSTGRES_URL:
        _missing("set HANDOFF_TEST_POSTGRES_URL to run the replica tests")
    assert POSTGRES_URL is not None
    schema = f"handoff_n_{uuid.uuid4().hex[:12]}"
    try:
        yield ServerDatabase("postgres", POSTGRES_URL, {"HANDOFF_DB__SCHEMA_NAME": schema})
    finally:
        drop_postgres_schema(POSTGRES_URL, schema)


def cross_process_env(db: ServerDatabase) -> dict[str, str]:
    """Two processes on one database hear each other: PostgreSQL by itself, SQLite through Redis."""
    return redis_env() if db.backend == "sqlite" else {}


async def primed(client: Client, inbox: Inbox, session_key: str) -> None:
    """Over HTTP a 2025-era client opens its GET stream just after the handshake; notices sent
    before it is up are not kept. Append until one arrives (bounded), so the stream is known open."""
    uri = f"handoff://sessions/{session_key}"
    await subscribe(client, uri)
    with anyio.fail_after(15):
        while uri not in inbox.received:
            await append(client, session_key, "priming")
            with anyio.move_on_after(0.5):
                await inbox.wait_for(uri)
    await unsubscribe(client, uri)
    inbox.take()


async def test_stdio_subscriber_hears_its_own_append_and_another_processes(server_db: ServerDatabase) -> None:
    env = cross_process_env(server_db)
    context = "handoff://sessions/job/context"
    async with legacy_client(stdio_params(server_db, **env)) as (watcher, inbox):
        structured(await watcher.call_tool("register_session", {"session_key": "job", "source_agent": "lead"}))
        await subscribe(watcher, context)
        await append(watcher, "job", "mine")
        await inbox.wait_for(context)
        inbox.take()
        async with Client(stdio_params(server_db, **env)) as other:
            await append(other, "job", "theirs")
            waited = await inbox.wait_for(context)
        assert waited < CROSS_PROCESS_SECONDS


async def test_stdio_2026_client_listens(server_db: ServerDatabase) -> None:
    context = "handoff://sessions/job/context"
    async with Client(stdio_params(server_db)) as client:
        assert client.protocol_version == "2026-07-28"
        structured(await client.call_tool("register_session", {"session_key": "job", "source_agent": "lead"}))
        async with client.listen(resource_subscriptions=[context]) as stream:
            await append(client, "job")
            await next_update(stream, context)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_http_subscribers_of_both_eras_hear_a_handoff_and_its_answer(server_db: ServerDatabase) -> None:
    with http_server(server_db) as server:
        async with legacy_client(server.url) as (watcher, inbox), Client(server.url) as modern:
            structured(await watcher.call_tool("register_session", {"session_key": "job", "source_agent": "lead"}))
            await primed(watcher, inbox, "job")
            inbox_uri = "handoff://agents/codex/inbox"
            await subscribe(watcher, inbox_uri)
            async with modern.listen(resource_subscriptions=[inbox_uri]) as stream:
                made = structured(
                    await modern.call_tool("request_handoff", {"session_key": "job", "target_agent": "codex"})
                )
                await inbox.wait_for(inbox_uri)
                await next_update(stream, inbox_uri)
            handoff_id = made["handoff"]["handoff_id"]
            handoff_uri = f"handoff://handoffs/{handoff_id}"
            await subscribe(watcher, handoff_uri)
            await unsubscribe(watcher, inbox_uri)
            inbox.take()
            structured(await modern.call_tool("accept_handoff", {"handoff_id": handoff_id, "agent": "codex"}))
            await inbox.wait_for(handoff_uri)
            assert inbox_uri not in inbox.received  # sent in the same commit, before the handoff's: not here


def _two_replicas(db: ServerDatabase, **env: str) -> Any:
    return _Replicas(db, env)


class _Replicas:
    def __init__(self, db: ServerDatabase, env: dict[str, str]) -> None:
        self._db, self._env = db, env

    def __enter__(self) -> tuple[str, str]:
        # One after the other: the first migrates the schema, the second finds it current.
        self._a = http_server(self._db, **self._env)
        a = self._a.__enter__()
        self._b = http_server(self._db, **self._env)
        b = self._b.__enter__()
        return a.url, b.url

    def __exit__(self, *exc: object) -> None:
        self._b.__exit__(None, None, None)
        self._a.__exit__(None, None, None)


async def _replica_to_replica(db: ServerDatabase, env: dict[str, str]) -> list[float]:
    """Subscribers on replica B (both eras); appends on replica A. Seconds each notice took."""
    waits: list[float] = []
    context = "handoff://sessions/job/context"
    with _two_replicas(db, **env) as (a, b):
        async with Client(a) as writer, legacy_client(b) as (watcher, inbox), Client(b) as modern:
            structured(await writer.call_tool("register_session", {"session_key": "job", "source_agent": "lead"}))
            await primed(watcher, inbox, "job")
            await subscribe(watcher, context)
            async with modern.listen(resource_subscriptions=[context]) as stream:
                for i in range(5):
                    inbox.take()
                    started = anyio.current_time()
                    await append(writer, "job", f"entry {i}")
                    await inbox.wait_for(context)
                    await next_update(stream, context)
                    waits.append(anyio.current_time() - started)
    return waits


async def test_an_append_on_one_replica_reaches_a_subscriber_on_the_other_via_postgres(
    shared_schema: ServerDatabase,
) -> None:
    waits = await _replica_to_replica(shared_schema, {"HANDOFF_NOTIFY__BACKEND": "postgres"})
    assert max(waits) < CROSS_PROCESS_SECONDS, waits


async def test_an_append_on_one_replica_reaches_a_subscriber_on_the_other_via_redis(
    shared_schema: ServerDatabase,
) -> None:
    waits = await _replica_to_replica(shared_schema, {**redis_env(), "HANDOFF_NOTIFY__BACKEND": "redis"})
    assert max(waits) < CROSS_PROCESS_SECONDS, waits


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_under_token_auth_only_what_the_caller_may_read_can_be_subscribed(server_db: ServerDatabase) -> None:
    codex = create_token(server_db, "codex")["token"]
    with http_server(server_db, HANDOFF_AUTH__MODE="tokens") as server:
        async with client_as(server.url, codex) as client:
            async with client.listen(resource_subscriptions=["handoff://agents/codex/inbox"]) as stream:
                assert stream.honored.resource_subscriptions == ["handoff://agents/codex/inbox"]
            with pytest.raises(MCPError) as refused:
                async with client.listen(resource_subscriptions=["handoff://agents/alice/inbox"]):
                    pass
            assert refused.value.error.data["code"] == "forbidden"
            assert "codex" in refused.value.error.message
            with pytest.raises(MCPError) as unread:  # the same rule as reading it
                await client.read_resource("handoff://agents/alice/inbox")
            assert unread.value.error.data["code"] == "forbidden"
            await client.read_resource("handoff://agents/codex/inbox")
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {codex}"})
        async with http, legacy_client(streamable_http_client(server.url, http_client=http)) as (legacy, _):
            await subscribe(legacy, "handoff://agents/codex/inbox")
            with pytest.raises(MCPError) as refused:
                await subscribe(legacy, "handoff://agents/alice/inbox")
            assert refused.value.error.data["code"] == "forbidden"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_stopping_server_ends_listen_streams_gracefully_and_promptly(server_db: ServerDatabase) -> None:
    with http_server(server_db) as server:
        async with Client(server.url) as client:
            structured(await client.call_tool("register_session", {"session_key": "job", "source_agent": "lead"}))
            async with client.listen(resource_subscriptions=["handoff://sessions/job"]) as stream:
                server.process.send_signal(signal.SIGTERM)
                # An open stream never finishes by itself; without closing it first, uvicorn would
                # wait its whole graceful timeout (10 s) and then drop it.
                with anyio.fail_after(5):
                    await anyio.to_thread.run_sync(server.process.wait)
                    events = [event async for event in stream]  # ends without SubscriptionLost
                assert events == []
