from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp.client import Client

from tests.conftest import structured
from tests.e2e.servers import http_server, stdio_params

pytestmark = pytest.mark.anyio


async def test_http_and_stdio_share_one_database(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    with http_server(db) as server:
        with anyio.fail_after(30):
            async with Client(server.url) as a:
                structured(await a.call_tool("register_session", {"session_key": "k", "source_agent": "a"}))
                structured(
                    await a.call_tool(
                        "update_context", {"session_key": "k", "context_type": "message", "content": "hi"}
                    )
                )
        with anyio.fail_after(30):
            async with Client(stdio_params(db)) as b:
                page = structured(await b.call_tool("get_context", {"session_key": "k"}))
                assert [e["content"] for e in page["entries"]] == ["hi"]
