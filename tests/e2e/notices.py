"""Receiving change notifications the way clients do: a 2025-era client's message handler, or a
2026-07-28 client's `listen` stream; every wait is bounded."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
from mcp.client import Client
from mcp.client.session import IncomingMessage
from mcp.server.subscriptions import ResourceUpdated
from mcp.shared.exceptions import MCPDeprecationWarning

LIST_CHANGED = "list_changed"


class Inbox:
    """What a 2025-era client was told: each updated URI (or LIST_CHANGED), in arrival order."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self._arrived = anyio.Event()

    async def handler(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self._add(message.params.uri)
        elif isinstance(message, types.ResourceListChangedNotification):
            self._add(LIST_CHANGED)

    def _add(self, item: str) -> None:
        self.received.append(item)
        self._arrived.set()
        self._arrived = anyio.Event()

    async def wait_for(self, item: str, timeout: float = 5.0) -> float:
        """Seconds waited until `item` arrived (counted from this call)."""
        started = anyio.current_time()
        with anyio.fail_after(timeout):
            while item not in self.received:
                await self._arrived.wait()
        return anyio.current_time() - started

    def take(self) -> list[str]:
        taken, self.received = self.received, []
        return taken


@asynccontextmanager
async def legacy_client(server: Any, **kwargs: Any) -> AsyncIterator[tuple[Client, Inbox]]:
    """A 2025-06-18-style client (the initialize handshake), collecting notifications."""
    inbox = Inbox()
    async with Client(server, mode="legacy", message_handler=inbox.handler, **kwargs) as client:
        yield client, inbox


async def subscribe(client: Client, uri: str) -> None:
    with warnings.catch_warnings():  # resources/subscribe is deprecated as of 2026-07-28: we test the 2025 era
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await client.subscribe_resource(uri)


async def unsubscribe(client: Client, uri: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await client.unsubscribe_resource(uri)


async def next_update(subscription: Any, uri: str, timeout: float = 5.0) -> float:
    """Seconds until a listen stream delivers an update for `uri` (other events are skipped)."""
    started = anyio.current_time()
    with anyio.fail_after(timeout):
        async for event in subscription:
            if isinstance(event, ResourceUpdated) and event.uri == uri:
                return anyio.current_time() - started
    raise AssertionError(f"the listen stream ended before {uri} was updated")


async def append(client: Client, session_key: str, content: str = "x", agent: str | None = None) -> int:
    arguments: dict[str, Any] = {"session_key": session_key, "context_type": "message", "content": content}
    if agent is not None:
        arguments["agent"] = agent
    result = await client.call_tool("update_context", arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return int(result.structured_content["entry"]["sequence_number"])
