"""Regressions from the hostile-client review (issue 10): each was a silent wrong answer or a crash."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import httpx
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError

from handoff.config import Settings
from handoff.container import Container
from handoff.mcp.server import build_server
from handoff.services.health import HealthService
from tests.conftest import structured, tool_error
from tests.e2e.servers import HANDOFF, http_server, server_env

pytestmark = pytest.mark.anyio

INITIALIZE_2025 = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}


@pytest.mark.slow
def test_set_level_from_a_client_does_not_silence_the_servers_log(tmp_path: Path) -> None:
    """A 2025-era client may still send logging/setLevel; it must not hide what it does next."""
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE_2025},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel", "params": {"level": "emergency"}},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "get_session", "arguments": {"session_key": "x"}},
        },
    ]
    env = server_env(f"sqlite:///{tmp_path / 'h.db'}", HANDOFF_LOG_LEVEL="INFO")
    server = subprocess.Popen(
        [HANDOFF, "stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
    server.stdin.flush()
    answers = {}
    while len(answers) < 3:  # a client keeps stdin open until it has its answers
        answer = json.loads(server.stdout.readline())
        answers[answer["id"]] = answer
    _, stderr = server.communicate(timeout=60)  # closes stdin: the server exits
    assert "result" in answers[2]
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(e.get("method") == "tools/call" and e.get("tool") == "get_session" for e in logged), stderr


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("\u0430lice", "mixes letters of different scripts"),  # Cyrillic а + Latin lice
        ("ali\u200bce", "invisible or direction-changing"),  # zero-width space
        ("alice\u202egnp.exe", "invisible or direction-changing"),  # right-to-left override
        ("bo\u2028b", "invisible or direction-changing"),  # a line separator inside the name
    ],
)
async def test_agent_names_that_could_impersonate_are_refused(client: Client, name: str, problem: str) -> None:
    error = tool_error(await client.call_tool("register_session", {"session_key": "s", "source_agent": name}))
    assert error["code"] == "invalid_input"
    assert problem in error["message"]
    assert tool_error(await client.call_tool("get_session", {"session_key": "s"}))["code"] == "not_found"


async def test_agent_names_are_stored_in_one_canonical_form(client: Client) -> None:
    fullwidth = structured(
        await client.call_tool(
            "register_session", {"session_key": "s", "source_agent": "\uff41\uff4c\uff49\uff43\uff45"}
        )
    )
    assert fullwidth["session"]["owner_agent"] == "alice"
    japanese = structured(await client.call_tool("register_session", {"session_key": "t", "source_agent": "田中さん"}))
    assert japanese["session"]["owner_agent"] == "田中さん"


async def test_an_idempotent_replay_with_other_metadata_or_writer_is_a_conflict(client: Client) -> None:
    structured(await client.call_tool("register_session", {"session_key": "s", "source_agent": "alice"}))
    call = {
        "session_key": "s",
        "context_type": "message",
        "content": "hello",
        "metadata": {"role": "user"},
        "agent": "alice",
        "idempotency_key": "k1",
    }
    first = structured(await client.call_tool("update_context", call))
    again = structured(await client.call_tool("update_context", call))
    assert again["entry"]["sequence_number"] == first["entry"]["sequence_number"]
    assert again["entry"]["replayed"] is True
    for change in ({"metadata": {"role": "assistant"}}, {"agent": "mallory"}):
        error = tool_error(await client.call_tool("update_context", {**call, **change}))
        assert error["code"] == "conflict", change
    page = structured(await client.call_tool("get_context", {"session_key": "s"}))
    assert [e["metadata"] for e in page["entries"]] == [{"role": "user"}]


async def test_a_forged_cursor_beyond_any_position_is_invalid_input(client: Client) -> None:
    structured(await client.call_tool("register_session", {"session_key": "s", "source_agent": "alice"}))
    forged = base64.urlsafe_b64encode(f"c:{2**64}".encode()).decode().rstrip("=")
    error = tool_error(await client.call_tool("get_context", {"session_key": "s", "cursor": forged}))
    assert error["code"] == "invalid_input"
    assert error["details"]["field"] == "cursor"


class _ReachableProbe:
    backend = "sqlite"

    async def ping(self) -> None:
        return None

    async def schema_revisions(self) -> tuple[str | None, str]:
        return "0002", "0002"


async def test_readiness_is_false_while_the_database_circuit_is_open() -> None:
    open_now = [False]
    health = HealthService(_ReachableProbe(), breaker_open=lambda: open_now[0])
    assert (await health.check_ready())["ready"] is True
    open_now[0] = True
    report = await health.check_ready()
    assert report["ready"] is False
    assert "circuit open" in report["checks"][0]["error"]


async def test_session_keys_with_a_colon_work_in_every_resource_uri(client: Client) -> None:
    structured(await client.call_tool("register_session", {"session_key": "build:42", "source_agent": "alice"}))
    structured(
        await client.call_tool(
            "update_context", {"session_key": "build:42", "context_type": "message", "content": "hi"}
        )
    )
    for uri in (
        "handoff://sessions/build:42",
        "handoff://sessions/build%3A42",  # percent-encoded, as RFC 6570 expansion writes it
        "handoff://sessions/build:42/context",
        "handoff://sessions/build:42/lifecycle",
    ):
        result = await client.read_resource(uri)
        assert '"build:42"' in result.contents[0].text, uri


async def test_a_resource_limit_that_is_a_digit_only_to_unicode_is_invalid_input(client: Client) -> None:
    structured(await client.call_tool("register_session", {"session_key": "s", "source_agent": "alice"}))
    with pytest.raises(MCPError) as raised:
        await client.read_resource("handoff://sessions/s/context?limit=%C2%B2")
    assert raised.value.error.data["code"] == "invalid_input"
    assert raised.value.error.data["field"] == "limit"


def test_health_and_metrics_refuse_a_foreign_host_on_a_loopback_bind(tmp_path: Path) -> None:
    # A page on another site that rebinds its name to 127.0.0.1 sends its own name as Host.
    with http_server(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}") as server:
        port = server.base.rsplit(":", 1)[1]
        with httpx.Client(base_url=server.base, timeout=10) as http:
            for path in ("/healthz", "/readyz", "/metrics"):
                foreign = http.get(path, headers={"Host": f"rebind.example:{port}"})
                assert foreign.status_code == 421, (path, foreign.status_code, foreign.text[:200])
                assert "handoff_" not in foreign.text
                own = http.get(path)
                assert own.status_code == 200, (path, own.status_code)
            assert "handoff_" in http.get("/metrics").text


async def test_a_page_of_entries_is_bounded_by_bytes_and_a_larger_entry_comes_alone(settings: Settings) -> None:
    # Pages were bounded by count only: 24 entries of 8 MiB made one 200 MiB answer.
    settings.limits.max_page_bytes = 1024
    sizes = [300, 300, 300, 2000, 100, 100, 5000]
    async with Container.build(settings) as built, Client(build_server(built)) as client:
        structured(await client.call_tool("register_session", {"session_key": "big", "source_agent": "a"}))
        for i, size in enumerate(sizes):
            content = f"{i}:" + "x" * (size - 2)
            structured(
                await client.call_tool(
                    "update_context", {"session_key": "big", "context_type": "message", "content": content}
                )
            )
        pages: list[list[int]] = []
        cursor = None
        while True:
            arguments = {"session_key": "big", "limit": 500} | ({"cursor": cursor} if cursor else {})
            page = structured(await client.call_tool("get_context", arguments))
            pages.append([len(e["content"]) for e in page["entries"]])
            cursor = page["next_cursor"]
            if not cursor:
                break
        # The resource reads page the same way.
        first = json.loads((await client.read_resource("handoff://sessions/big/context")).contents[0].text)
    assert pages == [[300, 300, 300], [2000], [100, 100], [5000]]
    assert [len(e["content"]) for e in first["entries"]] == [300, 300, 300]
