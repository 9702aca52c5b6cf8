"""A raw streamable-HTTP client for tests that must do what the SDK client hides: read part of a
response stream, drop the connection, and reconnect with `Last-Event-ID`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

PROTOCOL = "2025-11-25"  # the first revision whose streams are resumable (priming events)


@dataclass
class SseEvent:
    event_id: str | None
    data: str
    retry: int | None

    def message(self) -> dict[str, Any] | None:
        return json.loads(self.data) if self.data else None


async def events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """The SSE events of `response`, one by one as they arrive."""
    event_id: str | None = None
    retry: int | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data or event_id is not None:
                yield SseEvent(event_id, "\n".join(data), retry)
            event_id, retry, data = None, None, []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "data":
            data.append(value)
        elif name == "retry":
            retry = int(value)


@dataclass
class RawSession:
    http: httpx.AsyncClient
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    session_id: str | None = None
    _next_id: int = 0

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"accept": accept, "content-type": "application/json", **self.headers}
        if self.session_id is not None:
            headers["mcp-session-id"] = self.session_id
            headers["mcp-protocol-version"] = PROTOCOL
        return headers

    def request(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self._next_id += 1
        return self._next_id, {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}

    @asynccontextmanager
    async def post(self, body: dict[str, Any]) -> AsyncIterator[httpx.Response]:
        headers = self._headers("application/json, text/event-stream")
        async with self.http.stream("POST", self.url, json=body, headers=headers) as response:
            yield response

    @asynccontextmanager
    async def resume(self, last_event_id: str) -> AsyncIterator[httpx.Response]:
        headers = {**self._headers("text/event-stream"), "last-event-id": last_event_id}
        headers.pop("content-type")
        async with self.http.stream("GET", self.url, headers=headers) as response:
            yield response

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """One request, its whole answer read."""
        request_id, body = self.request(method, params)
        async with self.post(body) as response:
            response.raise_for_status()
            async for event in events(response):
                message = event.message()
                if message is not None and message.get("id") == request_id:
                    return message
        raise AssertionError(f"{method}: the stream ended without an answer")

    async def initialize(self) -> None:
        request_id, body = self.request(
            "initialize",
            {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "raw-sse", "version": "0"}},
        )
        async with self.post(body) as response:
            response.raise_for_status()
            self.session_id = response.headers["mcp-session-id"]
            async for event in events(response):
                if (event.message() or {}).get("id") == request_id:
                    break
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        async with self.post(note) as response:
            assert response.status_code == 202
