"""A request that outlives its deadline is answered with `unavailable`; the server keeps serving."""

from __future__ import annotations

import anyio
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError

from handoff.config import Settings
from handoff.container import Container
from handoff.mcp.errors import rpc_errors, tool_errors
from handoff.mcp.server import build_server
from tests.conftest import structured, tool_error

pytestmark = pytest.mark.anyio


async def test_a_tool_call_past_its_deadline_is_cut_off_with_unavailable(settings: Settings) -> None:
    settings.limits.request_timeout_seconds = 0.3
    released = anyio.Event()
    async with Container.build(settings) as container:
        server = build_server(container)

        # Registered through the same error/deadline wrappers as every real tool and resource.
        @server.resource("handoff://test/hang/{name}", mime_type="application/json")
        @rpc_errors
        async def hang(name: str) -> str:
            await released.wait()  # stands in for a dependency that stopped answering
            return "{}"

        @server.tool()
        @tool_errors
        async def hang_tool() -> dict[str, bool]:
            await released.wait()
            return {"ok": True}

        async with Client(server) as client:
            with anyio.fail_after(10):
                error = tool_error(await client.call_tool("hang_tool", {}))
                assert error["code"] == "unavailable"
                assert "0.3s deadline" in error["message"]
                with pytest.raises(MCPError, match="deadline"):
                    await client.read_resource("handoff://test/hang/x")
                # Nothing piled up: the next call is served at once.
                created = structured(
                    await client.call_tool("register_session", {"session_key": "after", "source_agent": "a"})
                )
                assert created["session"]["session_key"] == "after"
