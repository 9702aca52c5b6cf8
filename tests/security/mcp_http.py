"""Raw MCP over HTTP for the abuse tests: initialize, then JSON-RPC posts whose answers are read from
the SSE body (or the JSON error body the server sends instead)."""

from __future__ import annotations

import json
from typing import Any

import httpx

PROTOCOL = "2025-06-18"
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "abuse", "version": "1"}}


def answer_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer in a read response: an SSE `data:` line, or a plain JSON body."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                return dict(json.loads(line[5:]))
        raise AssertionError(f"no answer in the stream: {response.text[:300]!r}")
    return dict(response.json())


async def initialize(http: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INITIALIZE}
    return await http.post(url, json=body, headers={**ACCEPT, **(headers or {})})


async def open_session(http: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    """Initialize a session; the headers every later request of it carries."""
    response = await initialize(http, url, headers)
    assert response.status_code == 200, response.text
    session = {**ACCEPT, **(headers or {}), "mcp-session-id": response.headers["mcp-session-id"]}
    session["mcp-protocol-version"] = PROTOCOL
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post(url, json=note, headers=session)).status_code == 202
    return session


def tool_call(request_id: int | str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }
