"""Token authentication over HTTP (HANDOFF_AUTH__MODE=tokens), run the way operators run it: tokens made
with the CLI against the server's database, a real `handoff serve`, raw HTTP for the refusals and the
SDK client (with an Authorization header) for the calls that go through."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.conftest import structured, tool_error
from tests.e2e.servers import HANDOFF, ServerDatabase, http_server, server_env
from tests.e2e.test_startup_failures import assert_one_line_failure, run_until_exit

pytestmark = pytest.mark.anyio

TOKENS = {"HANDOFF_AUTH__MODE": "tokens"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def cli(db: ServerDatabase, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HANDOFF, *args], capture_output=True, text=True, env=server_env(db), timeout=60, check=False)


def create_token(db: ServerDatabase, agent: str, *extra: str) -> dict[str, Any]:
    done = cli(db, "tokens", "create", "--agent", agent, "--json", *extra)
    assert done.returncode == 0, done.stderr
    created: dict[str, Any] = json.loads(done.stdout)
    assert created["agent"] == agent
    assert created["token"].startswith("hnd_")
    return created


@asynccontextmanager
async def client_as(url: str, token: str) -> AsyncIterator[Client]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        yield client


def post_initialize(url: str, token: str | None) -> httpx.Response:
    headers = dict(MCP_HEADERS)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(url, json=INITIALIZE, headers=headers, timeout=10)


def test_tokens_are_listed_without_their_secret_and_revoked_by_id(server_db: ServerDatabase) -> None:
    created = create_token(server_db, "alice", "--expires", "3600")
    listed = cli(server_db, "tokens", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert created["token"] not in listed.stdout
    [row] = json.loads(listed.stdout)
    assert (row["id"], row["agent"], row["revoked_at"]) == (created["id"], "alice", None)
    assert row["expires_at"] is not None
    assert cli(server_db, "tokens", "revoke", created["id"]).returncode == 0
    [row] = json.loads(cli(server_db, "tokens", "list", "--json").stdout)
    assert row["revoked_at"] is not None
    missing = cli(server_db, "tokens", "revoke", "tok_missing")
    assert missing.returncode != 0
    assert "not_found" in missing.stderr


async def test_mcp_without_a_valid_token_is_401_and_health_stays_open(server_db: ServerDatabase) -> None:
    expired = create_token(server_db, "old", "--expires", "1")
    with http_server(server_db, **TOKENS) as server:
        await anyio.sleep(1.1)  # let the one-second token run out (the wait is the behaviour under test)
        for token in (None, "hnd_not-a-real-token", "not even the right shape", expired["token"]):
            response = post_initialize(server.url, token)
            assert response.status_code == 401, (token, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json()["error"]["code"] == "unauthorized"
        basic = httpx.post(server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": "Basic eDp5"})
        assert basic.status_code == 401
        assert httpx.get(server.url, timeout=10).status_code == 401
        health = httpx.get(server.base + "/healthz", timeout=10)
        assert (health.status_code, health.json()) == (200, {"status": "ok"})


async def test_a_token_acts_as_its_agent_and_revocation_holds_on_the_next_request(server_db: ServerDatabase) -> None:
    alice = create_token(server_db, "alice")
    bob = create_token(server_db, "bob")
    with http_server(server_db, **TOKENS) as server, anyio.fail_after(60):
        async with client_as(server.url, alice["token"]) as a:
            registered = structured(
                await a.call_tool("register_session", {"session_key": "s1", "source_agent": "alice"})
            )
            assert registered["session"]["owner_agent"] == "alice"
            # Naming someone else is refused; leaving the agent out means the token's agent.
            spoofed = tool_error(
                await a.call_tool("register_session", {"session_key": "s2", "source_agent": "mallory"})
            )
            assert spoofed["code"] == "forbidden"
            appended = structured(
                await a.call_tool("update_context", {"session_key": "s1", "context_type": "message", "content": "hi"})
            )
            assert appended["entry"]["sequence_number"] == 1
            as_bob = tool_error(
                await a.call_tool(
                    "update_context",
                    {"session_key": "s1", "context_type": "message", "content": "x", "agent": "bob"},
                )
            )
            assert as_bob["code"] == "forbidden"
            retention = {"session_key": "s1", "retention_policy": "short", "actor": "bob"}
            assert tool_error(await a.call_tool("set_retention_policy", retention))["code"] == "forbidden"
            handed = structured(await a.call_tool("request_handoff", {"session_key": "s1", "target_agent": "bob"}))
            handoff_id = handed["handoff"]["handoff_id"]

        async with client_as(server.url, bob["token"]) as b:
            # bob is not the owner: he cannot hand alice's session off, nor complete it, nor accept as alice.
            takeover = tool_error(
                await b.call_tool(
                    "request_handoff", {"session_key": "s1", "target_agent": "bob", "handoff_type": "full_handoff"}
                )
            )
            assert takeover["code"] == "forbidden"
            assert tool_error(await b.call_tool("complete_session", {"session_key": "s1"}))["code"] == "forbidden"
            wrong = tool_error(await b.call_tool("accept_handoff", {"handoff_id": handoff_id, "agent": "alice"}))
            assert wrong["code"] == "forbidden"
            accepted = structured(await b.call_tool("accept_handoff", {"handoff_id": handoff_id, "agent": "bob"}))
            assert accepted["handoff"]["status"] == "accepted"

        async with client_as(server.url, alice["token"]) as a:
            done = structured(await a.call_tool("complete_session", {"session_key": "s1"}))
            assert done["session"]["status"] == "completed"

        assert post_initialize(server.url, bob["token"]).status_code == 200
        assert cli(server_db, "tokens", "revoke", bob["id"]).returncode == 0
        await anyio.sleep(1.1)  # the server may reuse a lookup for at most one second
        refused = post_initialize(server.url, bob["token"])
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_wildcard_bind_without_authentication_refuses_to_start(server_db: ServerDatabase, host: str) -> None:
    code, _, err, elapsed = run_until_exit(
        ["serve", "--host", host, "--port", "0"], server_env(server_db, HANDOFF_AUTH__MODE="none")
    )
    assert_one_line_failure(code, err, elapsed, "HANDOFF_AUTH__MODE", host)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_mcp_session_answers_only_the_agent_that_opened_it(server_db: ServerDatabase) -> None:
    alice = create_token(server_db, "alice")["token"]
    bob = create_token(server_db, "bob")["token"]
    with http_server(server_db, **TOKENS) as server:
        opened = post_initialize(server.url, alice)
        assert opened.status_code == 200
        session_id = opened.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}

        def post_in_session(token: str) -> httpx.Response:
            headers = {
                **MCP_HEADERS,
                "Authorization": f"Bearer {token}",
                "Mcp-Session-Id": session_id,
                "Mcp-Protocol-Version": "2025-06-18",
            }
            return httpx.post(server.url, json=ping, headers=headers, timeout=10)

        # A leaked session id is of no use to another agent: to bob the session does not exist.
        assert post_in_session(bob).status_code == 404
        assert post_in_session(alice).status_code == 200
