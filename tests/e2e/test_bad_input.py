"""Bad input: each is a clear error, the server keeps serving, and stored data stays as it was."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from handoff.config import LimitSettings, Settings
from handoff.container import Container
from handoff.mcp.server import build_server
from tests.conftest import structured, tool_error
from tests.e2e.servers import ServerDatabase, http_server

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
SECRET = "project-nebula-secret"


async def seed(client: Client) -> dict[str, Any]:
    """Session s1 (owner alice, private metadata) with three entries; returns its full snapshot."""
    structured(
        await client.call_tool(
            "register_session", {"session_key": "s1", "source_agent": "alice", "metadata": {"codename": SECRET}}
        )
    )
    for kind, content in (("message", "fix the login bug"), ("file", "def login(): ..."), ("tool_call", "pytest -x")):
        structured(
            await client.call_tool("update_context", {"session_key": "s1", "context_type": kind, "content": content})
        )
    return await snapshot(client)


async def snapshot(client: Client, key: str = "s1") -> dict[str, Any]:
    """Everything observable about a session: a valid call that must keep working after each error."""
    page = structured(await client.call_tool("get_context", {"session_key": key, "limit": 500}))
    lifecycle = structured(await client.call_tool("get_lifecycle", {"session_key": key}))
    sessions = structured(await client.call_tool("list_sessions", {}))
    return {"page": page, "lifecycle": lifecycle, "keys": [s["session_key"] for s in sessions["sessions"]]}


def schema_error_text(result: Any) -> str:
    """A refusal of arguments that do not match the tool's input schema, in our error format."""
    error = tool_error(result)
    assert error["code"] == "invalid_input"
    text = json.dumps(error)
    assert "Traceback" not in text and "pydantic" not in text
    return text


def cursor_of(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.fixture
async def small_client(settings: Settings) -> AsyncIterator[Client]:
    """A server whose content limit is 1 KiB, so the size boundary is cheap to probe."""
    settings.limits = LimitSettings(max_content_bytes=1024)
    async with Container.build(settings) as container, Client(build_server(container)) as connected:
        yield connected


UNKNOWN_SESSION_CALLS = [
    ("update_context", {"session_key": "nope", "context_type": "message", "content": "hello"}),
    ("get_context", {"session_key": "nope"}),
    ("request_handoff", {"session_key": "nope", "target_agent": "bob", "handoff_type": "full_handoff"}),
    ("get_session", {"session_key": "nope"}),
    ("get_lifecycle", {"session_key": "nope"}),
    ("complete_session", {"session_key": "nope"}),
]


async def test_unknown_session_is_not_found_for_every_tool(client: Client) -> None:
    before = await seed(client)
    for tool, args in UNKNOWN_SESSION_CALLS:
        error = tool_error(await client.call_tool(tool, args))
        assert error["code"] == "not_found", tool
        assert "'nope'" in error["message"], tool
        assert await snapshot(client) == before, tool
    assert tool_error(await client.call_tool("get_session", {"session_key": "nope"}))["code"] == "not_found"


async def test_reading_an_unknown_resource_is_a_json_rpc_invalid_params_error(client: Client) -> None:
    before = await seed(client)
    for uri in (
        "handoff://sessions/nope",
        "handoff://sessions/nope/context",
        "handoff://sessions/nope/lifecycle",
        "handoff://handoffs/0123456789abcdef0123456789abcdef",
    ):
        with pytest.raises(MCPError) as raised:
            await client.read_resource(uri)
        assert raised.value.error.code == types.INVALID_PARAMS, uri
        assert isinstance(raised.value.error.data, dict), uri
        assert raised.value.error.data["code"] == "not_found", uri
        assert "Traceback" not in raised.value.error.message
        assert await snapshot(client) == before
    found = await client.read_resource("handoff://sessions/s1")
    assert json.loads(found.contents[0].text)["session"]["session_key"] == "s1"  # type: ignore[union-attr]


async def test_duplicate_key_shows_the_existing_session_but_not_its_metadata(client: Client) -> None:
    before = await seed(client)
    result = await client.call_tool(
        "register_session", {"session_key": "s1", "source_agent": "mallory", "metadata": {"codename": "other"}}
    )
    error = tool_error(result)
    assert error["code"] == "already_exists"
    shown = error["details"]["session"]
    assert shown["session_key"] == "s1"
    assert shown["status"] == "active"
    assert shown["owner_agent"] == "alice"
    assert shown["entry_count"] == 3
    assert "active" in error["message"]
    assert "alice" in error["message"]
    assert SECRET not in result.content[0].text
    assert "codename" not in result.content[0].text
    assert "metadata" not in shown
    after = await snapshot(client)
    assert after == before
    assert after["page"]["session"]["metadata"] == {"codename": SECRET}


async def test_content_over_the_size_limit_is_refused_naming_size_and_limit(small_client: Client) -> None:
    client = small_client
    before = await seed(client)
    for content, size in (
        ("a" * 1025, 1025),
        ("é" * 512 + "a", 1025),  # 513 characters, but the limit counts UTF-8 bytes
        ("😀" * 300, 1200),
    ):
        error = tool_error(
            await client.call_tool("update_context", {"session_key": "s1", "context_type": "file", "content": content})
        )
        assert error["code"] == "invalid_input"
        assert error["details"] == {"field": "content", "size": size, "limit": 1024}
        assert "1024" in error["message"]
        assert await snapshot(client) == before
    at_limit = structured(
        await client.call_tool("update_context", {"session_key": "s1", "context_type": "file", "content": "é" * 512})
    )
    assert at_limit["entry"]["sequence_number"] == 4
    assert at_limit["entry"]["content_bytes"] == 1024


async def test_content_one_byte_over_8_mib_is_refused_over_http(server_db: ServerDatabase) -> None:
    with http_server(server_db) as server:
        with anyio.fail_after(120):
            async with Client(server.url) as client:
                before = await seed(client)
                result = await client.call_tool(
                    "update_context", {"session_key": "s1", "context_type": "file", "content": "x" * (8 * MIB + 1)}
                )
                error = tool_error(result)
                assert error["code"] == "invalid_input"
                assert error["details"] == {"field": "content", "size": 8 * MIB + 1, "limit": 8 * MIB}
                assert await snapshot(client) == before
                at_limit = structured(
                    await client.call_tool(
                        "update_context", {"session_key": "s1", "context_type": "file", "content": "y" * (8 * MIB)}
                    )
                )
                assert at_limit["entry"]["sequence_number"] == 4
                assert at_limit["entry"]["content_bytes"] == 8 * MIB


INVALID_ENUMS = [
    ("update_context", {"session_key": "s1", "context_type": "note", "content": "x"}, "context_type"),
    ("update_context", {"session_key": "s1", "context_type": "MESSAGE", "content": "x"}, "context_type"),
    ("request_handoff", {"session_key": "s1", "target_agent": "bob", "handoff_type": "takeover"}, "handoff_type"),
    ("list_sessions", {"status": ["running"]}, "status"),
    ("get_context", {"session_key": "s1", "context_types": ["email"]}, "context_types"),
]


async def test_invalid_enum_values_are_refused_naming_the_allowed_values(client: Client) -> None:
    before = await seed(client)
    allowed = {
        "context_type": "'message'",
        "context_types": "'message'",
        "handoff_type": "'full_handoff'",
        "status": "'archived'",
    }
    for tool, args, field in INVALID_ENUMS:
        text = schema_error_text(await client.call_tool(tool, args))
        assert field in text, (tool, field, text)
        assert allowed[field].strip("'") in text, (tool, field, text)
        assert await snapshot(client) == before, (tool, field)


NOT_OBJECTS = ["a string", [1, 2], 42, 4.5, True]
METADATA_CALLS = [
    ("register_session", {"session_key": "s2", "source_agent": "bob"}, "metadata"),
    ("update_context", {"session_key": "s1", "context_type": "message", "content": "x"}, "metadata"),
    ("request_handoff", {"session_key": "s1", "target_agent": "bob"}, "request_data"),
]


async def test_metadata_that_is_not_an_object_is_refused(client: Client) -> None:
    before = await seed(client)
    for tool, args, field in METADATA_CALLS:
        for value in NOT_OBJECTS:
            text = schema_error_text(await client.call_tool(tool, {**args, field: value}))
            assert field in text, (tool, value, text)
            assert "dictionary" in text or "object" in text, (tool, value, text)
            # s2 was not created, s1 got no entry, no participant, no lifecycle event.
            assert await snapshot(client) == before, (tool, value)


async def test_lone_surrogate_in_content_or_metadata_is_refused_in_process(client: Client) -> None:
    before = await seed(client)
    for content in ("a\ud800b", "\udc00", "tail \ud83d", "\ude00 head"):
        error = tool_error(
            await client.call_tool(
                "update_context", {"session_key": "s1", "context_type": "message", "content": content}
            )
        )
        assert error["code"] == "invalid_input", repr(content)
        assert "surrogate" in error["message"]
        assert error["details"]["field"] == "content"
        surrogate_meta = await client.call_tool(
            "update_context",
            {"session_key": "s1", "context_type": "message", "content": "ok", "metadata": {"note": content}},
        )
        assert tool_error(surrogate_meta)["code"] == "invalid_input", repr(content)
        assert await snapshot(client) == before


class RawMcp:
    """A hand-written streamable-HTTP client, for bodies the SDK client refuses to encode."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url
        self.headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        self.next_id = 0

    async def initialize(self) -> None:
        status, message = await self.post_json(
            "initialize",
            {
                "protocolVersion": LATEST_HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "raw-test", "version": "0"},
            },
        )
        assert status == 200, message
        assert message["result"]["serverInfo"]["name"] == "handoff"
        self.headers["mcp-protocol-version"] = message["result"]["protocolVersion"]
        notified = await self.http.post(
            self.url, headers=self.headers, content=b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
        )
        assert notified.status_code == 202

    async def post_json(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.next_id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return await self.post_raw(body.encode())

    async def post_raw(self, body: bytes) -> tuple[int, dict[str, Any]]:
        response = await self.http.post(self.url, headers=self.headers, content=body)
        if session_id := response.headers.get("mcp-session-id"):
            self.headers["mcp-session-id"] = session_id
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            # Skipping the priming event (empty data) that resumable streams open with on 2025-11-25.
            data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
            messages = [json.loads(d) for d in data if d.strip()]
            assert len(messages) == 1, response.text
            return response.status_code, messages[0]
        return response.status_code, response.json()

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        status, message = await self.post_json("tools/call", {"name": name, "arguments": arguments})
        assert status == 200, message
        result: dict[str, Any] = message["result"]
        return result


async def test_lone_surrogates_in_raw_json_are_refused_and_the_http_session_keeps_serving(
    server_db: ServerDatabase,
) -> None:
    # The SDK client cannot even encode such a string (UnicodeEncodeError), so the body is written by hand.
    escaped = [r"a\ud800b", r"\udc00", r"x\ud800\u0041", r"\ud83d", r"\ude00\ud83d"]
    with http_server(server_db) as server:
        with anyio.fail_after(30):
            async with httpx.AsyncClient() as http:
                raw = RawMcp(http, server.url)
                await raw.initialize()
                registered = await raw.call_tool("register_session", {"session_key": "s1", "source_agent": "alice"})
                assert registered["isError"] is False
                for n, content in enumerate(escaped, start=1):
                    body = (
                        '{"jsonrpc":"2.0","id":' + str(1000 + n) + ',"method":"tools/call","params":'
                        '{"name":"update_context","arguments":'
                        '{"session_key":"s1","context_type":"message","content":"' + content + '"}}}'
                    )
                    status, message = await raw.post_raw(body.encode())
                    if "error" in message:
                        # The SDK refuses the JSON text itself: a JSON-RPC protocol error, not a crash.
                        assert status == 400, (content, message)
                        assert message["error"]["code"] == types.PARSE_ERROR, (content, message)
                    else:
                        # Or the body parses and our validation names the surrogate.
                        assert message["id"] == 1000 + n, (content, message)
                        assert message["result"]["isError"] is True, (content, message)
                        error = json.loads(message["result"]["content"][0]["text"])["error"]
                        assert error["code"] == "invalid_input", (content, error)
                        assert "surrogate" in error["message"], (content, error)

                    # Same MCP session: the server keeps serving it, and nothing was stored.
                    page = await raw.call_tool("get_context", {"session_key": "s1"})
                    assert page["structuredContent"]["entries"] == [], content

                # A surrogate encoded as if it were a code point (CESU-8 style) is not UTF-8 at all.
                status, message = await raw.post_raw(
                    b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"update_context","arguments":'
                    b'{"session_key":"s1","context_type":"message","content":"a\xed\xa0\x80b"}}}'
                )
                assert status == 400
                assert message["error"]["code"] == types.PARSE_ERROR

                # A valid pair (json.dumps escapes the emoji as \ud83d\ude00) is accepted.
                appended = await raw.call_tool(
                    "update_context",
                    {"session_key": "s1", "context_type": "message", "content": "still here 😀"},
                )
                assert appended["structuredContent"]["entry"]["sequence_number"] == 1
                page = await raw.call_tool("get_context", {"session_key": "s1"})
                assert [e["content"] for e in page["structuredContent"]["entries"]] == ["still here 😀"]
                assert page["structuredContent"]["session"]["entry_count"] == 1


async def test_session_keys_with_control_characters_or_slash_are_refused(client: Client) -> None:
    before = await seed(client)
    for key in ("a\nb", "a\x00b", "a\x1bb", "a\x7fb", "a/b", "s1/context", "../s1", "s1\n", " s1", "", "a b"):
        registered = tool_error(await client.call_tool("register_session", {"session_key": key, "source_agent": "bob"}))
        assert registered["code"] == "invalid_input", repr(key)
        assert registered["details"]["field"] == "session_key", repr(key)
        assert "session_key" in registered["message"]
        appended = tool_error(
            await client.call_tool("update_context", {"session_key": key, "context_type": "message", "content": "x"})
        )
        assert appended["code"] == "invalid_input", repr(key)  # refused as malformed, before any lookup
        assert await snapshot(client) == before, repr(key)
    for key in ("a\nb", "a\x1bb", "a\x00b"):
        error = tool_error(await client.call_tool("register_session", {"session_key": key, "source_agent": "bob"}))
        assert f"U+{ord(key[1]):04X}" in error["message"], repr(key)  # named, not echoed raw
        assert key[1] not in error["message"], repr(key)


async def test_nul_character_is_refused_clearly_wherever_text_is_stored(client: Client) -> None:
    before = await seed(client)
    nul_content = tool_error(
        await client.call_tool(
            "update_context", {"session_key": "s1", "context_type": "message", "content": "before\x00after"}
        )
    )
    assert nul_content["code"] == "invalid_input"
    assert "NUL" in nul_content["message"]
    assert nul_content["details"] == {"field": "content", "index": 6}
    for call in (
        {"session_key": "s1", "context_type": "message", "content": "ok", "metadata": {"note": "a\x00b"}},
        {"session_key": "s1", "context_type": "message", "content": "ok", "metadata": {"k\x00": 1}},
        {"session_key": "s1", "context_type": "message", "content": "ok", "metadata": {"deep": [{"x": "\x00"}]}},
        {"session_key": "s1", "context_type": "message", "content": "ok", "agent": "ali\x00ce"},
        {"session_key": "s1", "context_type": "message", "content": "ok", "idempotency_key": "k\x00"},
    ):
        error = tool_error(await client.call_tool("update_context", call))
        assert error["code"] == "invalid_input", call
        assert "NUL" in error["message"] or "control character" in error["message"], call
    handoff = tool_error(
        await client.call_tool(
            "request_handoff", {"session_key": "s1", "target_agent": "bob", "request_data": {"note": "\x00"}}
        )
    )
    assert handoff["code"] == "invalid_input"
    registered = tool_error(
        await client.call_tool(
            "register_session", {"session_key": "s2", "source_agent": "bob", "metadata": {"note": "\x00"}}
        )
    )
    assert registered["code"] == "invalid_input"
    assert await snapshot(client) == before


async def test_a_cursor_this_server_did_not_issue_is_refused(client: Client) -> None:
    before = await seed(client)
    for cursor in ("garbage!!", cursor_of("s:1"), cursor_of("c:-1"), cursor_of("c:abc"), cursor_of("c"), "%%%"):
        error = tool_error(await client.call_tool("get_context", {"session_key": "s1", "cursor": cursor}))
        assert error["code"] == "invalid_input", cursor
        assert error["details"] == {"field": "cursor"}, cursor
        assert "next_cursor" in error["message"]
        assert await snapshot(client) == before, cursor

    first = structured(await client.call_tool("get_context", {"session_key": "s1", "limit": 1}))
    assert first["next_cursor"] is not None
    error = tool_error(await client.call_tool("list_sessions", {"cursor": first["next_cursor"]}))
    assert error["code"] == "invalid_input"
    assert error["details"] == {"field": "cursor"}
    with pytest.raises(MCPError) as raised:
        await client.read_resource("handoff://sessions/s1/context?cursor=garbage")
    assert raised.value.error.code == types.INVALID_PARAMS
    assert await snapshot(client) == before


async def test_limit_out_of_range_is_refused_naming_the_range(client: Client) -> None:
    before = await seed(client)
    for tool, args in (
        ("get_context", {"session_key": "s1", "limit": 0}),
        ("get_context", {"session_key": "s1", "limit": -1}),
        ("get_context", {"session_key": "s1", "limit": 501}),
        ("list_sessions", {"limit": 0}),
        ("list_sessions", {"limit": 10_000}),
    ):
        error = tool_error(await client.call_tool(tool, args))
        assert error["code"] == "invalid_input", (tool, args)
        assert error["details"]["field"] == "limit"
        assert "between 1 and 500" in error["message"]
        assert await snapshot(client) == before
    for limit in ("0", "abc", "-3", "501"):
        with pytest.raises(MCPError) as raised:
            await client.read_resource(f"handoff://sessions/s1/context?limit={limit}")
        assert raised.value.error.code == types.INVALID_PARAMS, limit
        assert "limit" in raised.value.error.message, limit
        assert await snapshot(client) == before


async def test_token_budget_out_of_range_is_refused_and_no_handoff_happens(client: Client) -> None:
    before = await seed(client)
    for budget in (0, -1, 63, 32_001, 10**9):
        error = tool_error(
            await client.call_tool(
                "request_handoff",
                {"session_key": "s1", "target_agent": "bob", "handoff_type": "full_handoff", "token_budget": budget},
            )
        )
        assert error["code"] == "invalid_input", budget
        assert error["details"]["field"] == "token_budget"
        assert str(budget) in error["message"]
        after = await snapshot(client)
        assert after == before, budget
        assert after["page"]["session"]["owner_agent"] == "alice"


async def test_ttl_seconds_out_of_range_is_refused_and_nothing_is_registered(client: Client) -> None:
    before = await seed(client)
    for ttl in (0, -1, -86_400, 365 * 24 * 3600 + 1):
        error = tool_error(
            await client.call_tool("register_session", {"session_key": "s2", "source_agent": "bob", "ttl_seconds": ttl})
        )
        assert error["code"] == "invalid_input", ttl
        assert error["details"]["field"] == "ttl_seconds"
        assert str(ttl) in error["message"]
        assert await snapshot(client) == before, ttl
        assert tool_error(await client.call_tool("get_session", {"session_key": "s2"}))["code"] == "not_found"


async def test_writes_to_a_completed_session_are_refused_naming_the_state(client: Client) -> None:
    await seed(client)
    completed = structured(await client.call_tool("complete_session", {"session_key": "s1"}))
    assert completed["session"]["status"] == "completed"
    before = await snapshot(client)

    append = tool_error(
        await client.call_tool("update_context", {"session_key": "s1", "context_type": "message", "content": "more"})
    )
    assert append["code"] == "invalid_state"
    assert "completed" in append["message"]
    assert append["details"]["status"] == "completed"

    handoff = tool_error(
        await client.call_tool(
            "request_handoff", {"session_key": "s1", "target_agent": "bob", "handoff_type": "full_handoff"}
        )
    )
    assert handoff["code"] == "invalid_state"
    assert "completed" in handoff["message"]
    assert handoff["details"]["status"] == "completed"

    again = tool_error(await client.call_tool("complete_session", {"session_key": "s1"}))
    assert again["code"] == "invalid_state"
    assert "completed" in again["message"]

    after = await snapshot(client)
    assert after == before
    assert [e["content"] for e in after["page"]["entries"]] == ["fix the login bug", "def login(): ...", "pytest -x"]


async def test_http_connection_keeps_serving_after_a_run_of_errors(server_db: ServerDatabase) -> None:
    with http_server(server_db) as server:
        with anyio.fail_after(60):
            async with Client(server.url) as client:
                before = await seed(client)
                refusals = [
                    ("update_context", {"session_key": "nope", "context_type": "message", "content": "x"}),
                    ("update_context", {"session_key": "s1", "context_type": "note", "content": "x"}),
                    (
                        "update_context",
                        {"session_key": "s1", "context_type": "message", "content": "x", "metadata": []},
                    ),
                    ("update_context", {"session_key": "s1", "context_type": "message", "content": "a\x00b"}),
                    ("register_session", {"session_key": "a/b", "source_agent": "bob"}),
                    ("register_session", {"session_key": "s1", "source_agent": "bob"}),
                    ("get_context", {"session_key": "s1", "cursor": "junk"}),
                    ("request_handoff", {"session_key": "s1", "target_agent": "bob", "token_budget": 1}),
                    ("no_such_tool", {}),
                ]
                for tool, args in refusals:
                    result = await client.call_tool(tool, args)
                    assert result.is_error, (tool, args)
                    assert "Traceback" not in result.content[0].text
                with pytest.raises(MCPError):
                    await client.read_resource("handoff://sessions/nope")
                assert await snapshot(client) == before
                appended = structured(
                    await client.call_tool(
                        "update_context", {"session_key": "s1", "context_type": "message", "content": "carry on"}
                    )
                )
                assert appended["entry"]["sequence_number"] == 4
                page = structured(await client.call_tool("get_context", {"session_key": "s1"}))
                assert [e["content"] for e in page["entries"]][-1] == "carry on"


# A value of the wrong JSON type for each schema type: what a confused model sends.
WRONG_TYPE = {"string": ["a", "list"], "integer": "many", "number": "lots", "object": 7, "array": 7}


def _json_types(schema: dict[str, Any]) -> set[str]:
    if "type" in schema:
        return {schema["type"]} if isinstance(schema["type"], str) else set(schema["type"])
    return {t for option in schema.get("anyOf", []) for t in _json_types(option)} - {"null"}


async def test_every_tool_names_each_missing_or_mistyped_argument_in_our_error_format(client: Client) -> None:
    before = await seed(client)
    tools = (await client.list_tools()).tools
    checked = 0
    for tool in tools:
        properties = tool.input_schema.get("properties", {})
        for required in tool.input_schema.get("required", []):
            error = tool_error(await client.call_tool(tool.name, {}))
            assert error["code"] == "invalid_input", (tool.name, error)
            assert required in [p["field"] for p in error["details"]["problems"]], (tool.name, error)
            assert f"{required} is required" in error["message"]
            checked += 1
        for name, schema in properties.items():
            types_ = _json_types(schema)
            if len(types_) != 1 or "enum" in schema or next(iter(types_)) not in WRONG_TYPE:
                continue
            arguments = dict.fromkeys(tool.input_schema.get("required", []), "s1")
            arguments[name] = WRONG_TYPE[next(iter(types_))]
            error = tool_error(await client.call_tool(tool.name, arguments))
            assert error["code"] == "invalid_input", (tool.name, name, error)
            assert name in error["message"] and "errors.pydantic.dev" not in error["message"], (tool.name, error)
            checked += 1
    assert checked > 20  # every tool was exercised, not skipped
    assert await snapshot(client) == before


async def test_an_unknown_tool_is_not_found_in_our_error_format(client: Client) -> None:
    error = tool_error(await client.call_tool("drop_all_tables", {}))
    assert error["code"] == "not_found"
    assert "drop_all_tables" in error["message"]


async def test_prompt_arguments_missing_or_unknown_prompt_are_invalid_params_naming_them(client: Client) -> None:
    for prompt in (await client.list_prompts()).prompts:
        required = [a.name for a in prompt.arguments or [] if a.required]
        if not required:
            continue
        with pytest.raises(MCPError) as raised:
            await client.get_prompt(prompt.name, {})
        assert raised.value.error.code == types.INVALID_PARAMS
        assert raised.value.error.data["code"] == "invalid_input"
        assert raised.value.error.data["field"] == required[0]
        assert f"{required[0]} is required" in raised.value.error.message
    with pytest.raises(MCPError) as raised:
        await client.get_prompt("no_such_prompt", {})
    assert raised.value.error.code == types.INVALID_PARAMS
    assert raised.value.error.data["code"] == "not_found"
