from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp.client import Client

from tests.conftest import structured
from tests.e2e.servers import ServerDatabase, http_server, stdio_params

pytestmark = pytest.mark.anyio


async def test_http_and_stdio_share_one_database(server_db: ServerDatabase) -> None:
    db = server_db
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


async def test_handshake_era_and_current_clients_use_the_same_tools(tmp_path: Path) -> None:
    """2025-era clients (initialize handshake) and 2026-07-28 clients (discover) both get served."""
    # SQLite only: this is about the protocol handshake; the storage backend plays no part.
    db = f"sqlite:///{tmp_path / 'h.db'}"
    with http_server(db) as server, anyio.fail_after(60):
        async with Client(server.url, mode="legacy") as legacy:
            assert legacy.protocol_version in {"2025-11-25", "2025-06-18"}
            structured(await legacy.call_tool("register_session", {"session_key": "eras", "source_agent": "old"}))
            structured(
                await legacy.call_tool(
                    "update_context", {"session_key": "eras", "context_type": "message", "content": "from 2025"}
                )
            )
        async with Client(server.url) as modern:
            assert modern.protocol_version == "2026-07-28"
            page = structured(await modern.call_tool("get_context", {"session_key": "eras"}))
            assert [e["content"] for e in page["entries"]] == ["from 2025"]
