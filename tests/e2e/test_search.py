"""search_context through real servers (HTTP with token authentication, stdio) and `handoff search`."""

from __future__ import annotations

import json
import subprocess

import anyio
import pytest
from mcp.client import Client

from tests.conftest import structured, tool_error
from tests.e2e.servers import HANDOFF, ServerDatabase, http_server, server_env, stdio_params
from tests.e2e.test_auth import TOKENS, client_as, create_token

pytestmark = pytest.mark.anyio


async def _seed(client: Client, key: str, agent: str, texts: list[str]) -> None:
    structured(await client.call_tool("register_session", {"session_key": key, "source_agent": agent}))
    for text in texts:
        args = {"session_key": key, "context_type": "message", "content": text}
        structured(await client.call_tool("update_context", args))


async def test_search_over_http_with_tokens_reads_what_get_context_reads(server_db: ServerDatabase) -> None:
    alice = create_token(server_db, "alice")["token"]
    bob = create_token(server_db, "bob")["token"]
    with http_server(server_db, **TOKENS) as server, anyio.fail_after(60):
        async with client_as(server.url, alice) as a:
            await _seed(
                a,
                "billing",
                "alice",
                ["the refund went out, later the webhook", "we chose the refund webhook with retries", "unrelated"],
            )
        async with client_as(server.url, bob) as b:
            # Bob may read alice's session with get_context, so he may search it too.
            page = structured(await b.call_tool("get_context", {"session_key": "billing"}))
            assert len(page["entries"]) == 3
            found = structured(await b.call_tool("search_context", {"query": "refund webhook"}))
            assert [(r["session_key"], r["sequence_number"]) for r in found["results"]] == [
                ("billing", 2),
                ("billing", 1),
            ]
            first = found["results"][0]
            assert first["context_type"] == "message"
            assert first["snippet"] == "we chose the «refund webhook» with retries"
            assert first["score"] > found["results"][1]["score"]
            assert found["next_cursor"] is None

            # `agent` filters by writer; it is not an identity check, so naming someone else is fine.
            mine = structured(await b.call_tool("search_context", {"query": "refund", "agent": "bob"}))
            assert mine["results"] == []
            theirs = structured(await b.call_tool("search_context", {"query": "refund", "agent": "alice"}))
            assert len(theirs["results"]) == 2

            paged = structured(await b.call_tool("search_context", {"query": "refund", "limit": 1}))
            assert paged["next_cursor"]
            rest = structured(
                await b.call_tool("search_context", {"query": "refund", "limit": 1, "cursor": paged["next_cursor"]})
            )
            assert rest["results"][0]["sequence_number"] != paged["results"][0]["sequence_number"]

            bad = tool_error(await b.call_tool("search_context", {"query": "a OR"}))
            assert bad["code"] == "invalid_input" and bad["details"]["field"] == "query"
            for hostile in ('"', "NEAR(", "'; DROP TABLE sessions; --", "*", "-", ":"):
                result = await b.call_tool("search_context", {"query": hostile})
                if result.is_error:
                    error = tool_error(result)
                    assert (error["code"], error["details"]["field"]) == ("invalid_input", "query"), error
                else:
                    assert isinstance(structured(result)["results"], list)
            wrong = tool_error(await b.call_tool("search_context", {"query": "refund", "cursor": "nope"}))
            assert (wrong["code"], wrong["details"]["field"]) == ("invalid_input", "cursor")
            missing = tool_error(await b.call_tool("search_context", {"query": "refund", "session_key": "nope"}))
            assert missing["code"] == "not_found"
            too_many = tool_error(await b.call_tool("search_context", {"query": "refund", "limit": 501}))
            assert (too_many["code"], too_many["details"]["field"]) == ("invalid_input", "limit")


async def test_search_over_stdio_and_the_listing_describes_the_syntax(server_db: ServerDatabase) -> None:
    with anyio.fail_after(60):
        async with Client(stdio_params(server_db)) as client:
            await _seed(client, "intl", "a", ["退款处理失败", "deploy to staging failed"])
            tools = {t.name: t for t in (await client.list_tools()).tools}
            tool = tools["search_context"]
            assert tool.annotations is not None and tool.annotations.read_only_hint
            described = tool.input_schema["properties"]["query"]["description"]
            assert '"exact phrase"' in described and "refun*" in described and " OR " in described
            found = structured(await client.call_tool("search_context", {"query": "退款", "session_key": "intl"}))
            assert [r["snippet"] for r in found["results"]] == ["«退款»处理失败"]
            typed = structured(
                await client.call_tool("search_context", {"query": "fail*", "context_types": ["tool_call"]})
            )
            assert typed["results"] == []


def _cli(db: ServerDatabase, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HANDOFF, *args], capture_output=True, text=True, env=server_env(db), timeout=60, check=False)


async def test_the_search_command(server_db: ServerDatabase) -> None:
    with http_server(server_db) as server, anyio.fail_after(60):
        async with Client(server.url) as client:
            await _seed(client, "cli-a", "a", ["refund webhook design", "the webhook refund, reversed"])
            await _seed(client, "cli-b", "a", ["a refund webhook elsewhere"])

    as_json = _cli(server_db, "search", "refund webhook", "--json")
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert set(body) == {"results", "next_cursor"}
    assert sorted((r["session_key"], r["sequence_number"]) for r in body["results"]) == [
        ("cli-a", 1),
        ("cli-a", 2),
        ("cli-b", 1),
    ]
    assert set(body["results"][0]) == {"session_key", "sequence_number", "context_type", "snippet", "score"}

    scoped = json.loads(_cli(server_db, "search", '"refund webhook"', "--session", "cli-a", "--json").stdout)
    assert [(r["session_key"], r["sequence_number"]) for r in scoped["results"]] == [("cli-a", 1)]

    first = json.loads(_cli(server_db, "search", "refund", "--limit", "2", "--json").stdout)
    assert len(first["results"]) == 2 and first["next_cursor"]
    rest = json.loads(
        _cli(server_db, "search", "refund", "--limit", "2", "--cursor", first["next_cursor"], "--json").stdout
    )
    seen = [(r["session_key"], r["sequence_number"]) for r in first["results"] + rest["results"]]
    assert len(seen) == len(set(seen)) == 3 and rest["next_cursor"] is None

    table = _cli(server_db, "search", "refund webhook", "--type", "message")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("search 'refund webhook': 3 results")
    assert lines[1].split() == ["session", "#", "type", "agent", "score", "snippet"]
    assert "«refund webhook» design" in table.stdout

    none = _cli(server_db, "search", "refund", "--type", "file")
    assert none.returncode == 0 and "(none)" in none.stdout

    bad = _cli(server_db, "search", "OR")
    assert bad.returncode == 1
    assert (
        bad.stderr.strip() == "error (invalid_input): OR needs a word or phrase on each side (e.g. webhook OR callback)"
    )
    assert bad.stdout == ""
