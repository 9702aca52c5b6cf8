"""What `handoff config CLIENT` prints really connects: the command or URL is taken out of the parsed
snippet, exactly as the client would read it, and a real server answers on it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from handoff.clientconfig import CLIENTS, render, server_command
from tests.e2e.servers import HANDOFF, RunningServer, http_server, server_env
from tests.unit.test_clientconfig import HTTP_CLIENTS, entry_of

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

UNUSED_URL = "http://127.0.0.1:1/mcp"


async def _tool_names(client: Client) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


async def _stdio_tools(command: str, args: list[str], database: Path) -> set[str]:
    params = StdioServerParameters(command=command, args=args, env=server_env(f"sqlite:///{database}"))
    with anyio.fail_after(60):
        async with Client(params) as client:
            return await _tool_names(client)


@pytest.mark.parametrize("client", CLIENTS)
async def test_stdio_snippet_starts_a_server_that_lists_the_tools(client: str, tmp_path: Path) -> None:
    entry = entry_of(client, render(client, "stdio", server_command(), UNUSED_URL).text)
    assert entry == {"command": HANDOFF, "args": ["stdio"]}
    assert "register_session" in await _stdio_tools(entry["command"], entry["args"], tmp_path / "c.db")


async def test_the_fallback_without_a_handoff_script_starts_the_package(tmp_path: Path) -> None:
    # What `server_command` gives when no `handoff` script is found: this interpreter, `-m handoff stdio`.
    command = [sys.executable, "-m", "handoff", "stdio"]
    entry = entry_of("cursor", render("cursor", "stdio", command, UNUSED_URL).text)
    assert "register_session" in await _stdio_tools(entry["command"], entry["args"], tmp_path / "f.db")


@pytest.fixture(scope="module")
def running_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    database = tmp_path_factory.mktemp("client-configs") / "h.db"
    with http_server(f"sqlite:///{database}") as server:
        yield server


@pytest.mark.parametrize("client", HTTP_CLIENTS)
async def test_http_snippet_reaches_the_running_server(client: str, running_server: RunningServer) -> None:
    entry = entry_of(client, render(client, "http", server_command(), running_server.url).text)
    assert entry == {"url": running_server.url}
    with anyio.fail_after(30):
        async with Client(entry["url"]) as session:
            assert "register_session" in await _tool_names(session)
