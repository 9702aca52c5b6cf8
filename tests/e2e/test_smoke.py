from __future__ import annotations

import pytest
from mcp.client import Client

from tests.conftest import structured, tool_error

pytestmark = pytest.mark.anyio


async def test_register_append_handoff_read(client: Client) -> None:
    s = structured(await client.call_tool("register_session", {"session_key": "s1", "source_agent": "claude"}))
    assert s["session"]["status"] == "active"
    r = structured(
        await client.call_tool(
            "update_context",
            {"session_key": "s1", "context_type": "message", "content": "fix the bug", "metadata": {"role": "user"}},
        )
    )
    assert r["entry"]["sequence_number"] == 1
    h = structured(
        await client.call_tool(
            "request_handoff", {"session_key": "s1", "target_agent": "codex", "handoff_type": "full_handoff"}
        )
    )
    print(h["handoff"]["brief"])
    print(h["handoff"]["instructions"])
    page = structured(await client.call_tool("get_context", {"session_key": "s1"}))
    assert [e["content"] for e in page["entries"]] == ["fix the bug"]
    err = tool_error(await client.call_tool("get_context", {"session_key": "nope"}))
    assert err["code"] == "not_found"
    res = await client.read_resource("handoff://sessions/s1/context")
    print(res)
    res = await client.read_resource(f"handoff://handoffs/{h['handoff']['handoff_id']}")
    print(res.contents[0].mime_type)
