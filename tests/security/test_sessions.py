"""MCP sessions against abuse, on a real `handoff serve`: a per-principal session cap with 429, the
reap of sessions never used after initialize, and duplicate request ids in one session."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import httpx
import pytest

from tests.e2e.servers import HANDOFF, http_server, server_env
from tests.security.mcp_http import answer_of, initialize, open_session, tool_call

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MIB = 1024 * 1024


def _from(address: str) -> httpx.AsyncClient:
    """A client whose connections come from `address` (any 127.x.y.z is this machine's loopback)."""
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=address), timeout=30)


async def test_a_principal_at_its_session_cap_gets_429_while_another_still_opens_sessions(tmp_path: Path) -> None:
    env = {"HANDOFF_HTTP__MAX_SESSIONS_PER_PRINCIPAL": "3", "HANDOFF_HTTP__UNUSED_SESSION_SECONDS": "2"}
    with http_server(f"sqlite:///{tmp_path / 's.db'}", **env) as server:
        async with _from("127.0.0.2") as greedy, _from("127.0.0.1") as other:
            sessions = [await open_session(greedy, server.url) for _ in range(3)]
            refused = await initialize(greedy, server.url)
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
            error = refused.json()["error"]
            assert error["code"] == -32029
            assert "address 127.0.0.2" in error["message"] and "at most 3" in error["message"]
            assert "HANDOFF_HTTP__MAX_SESSIONS_PER_PRINCIPAL" in error["message"]

            assert (await initialize(other, server.url)).status_code == 200
            assert (await greedy.get(f"{server.base}/healthz")).status_code == 200  # only sessions are capped

            # One session is used; the two never used after initialize are closed after 2 s.
            listed = await greedy.post(
                server.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=sessions[0]
            )
            assert "result" in answer_of(listed)
            with anyio.fail_after(20):
                while (await initialize(greedy, server.url)).status_code == 429:
                    await anyio.sleep(0.25)
            gone = await greedy.post(
                server.url, json={"jsonrpc": "2.0", "id": 2, "method": "ping"}, headers=sessions[1]
            )
            assert gone.status_code == 404
            kept = await greedy.post(
                server.url, json={"jsonrpc": "2.0", "id": 3, "method": "ping"}, headers=sessions[0]
            )
            assert kept.status_code == 200 and "result" in answer_of(kept)


async def test_with_tokens_the_cap_is_per_agent_not_per_address(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 't.db'}"
    env = server_env(database)
    subprocess.run([HANDOFF, "migrate"], env=env, check=True, capture_output=True)
    tokens = {}
    for agent in ("alice", "bob"):
        created = subprocess.run(
            [HANDOFF, "tokens", "create", "--agent", agent, "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        tokens[agent] = {"authorization": f"Bearer {json.loads(created.stdout)['token']}"}
    settings = {"HANDOFF_AUTH__MODE": "tokens", "HANDOFF_HTTP__MAX_SESSIONS_PER_PRINCIPAL": "2"}
    with http_server(database, **settings) as server:
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(2):
                await open_session(http, server.url, tokens["alice"])
            refused = await initialize(http, server.url, tokens["alice"])
            assert refused.status_code == 429
            assert "agent alice" in refused.json()["error"]["message"]
            assert (await initialize(http, server.url, tokens["bob"])).status_code == 200


async def test_a_duplicate_of_a_request_id_in_flight_is_refused_at_once_and_the_first_completes(tmp_path: Path) -> None:
    # The first call's answer (two 7 MiB entries) is far larger than the socket buffers: while this
    # client does not read it, the server cannot finish sending it and the request stays in flight.
    with http_server(f"sqlite:///{tmp_path / 'd.db'}", HANDOFF_LIMITS__MAX_PAGE_BYTES=str(64 * MIB)) as server:
        async with httpx.AsyncClient(timeout=60) as http:
            session = await open_session(http, server.url)
            register = tool_call(1, "register_session", {"session_key": "big", "source_agent": "a"})
            assert "result" in answer_of(await http.post(server.url, json=register, headers=session))
            for n in range(2):
                entry = {"session_key": "big", "context_type": "file", "content": chr(97 + n) * (7 * MIB)}
                answer = answer_of(
                    await http.post(server.url, json=tool_call(10 + n, "update_context", entry), headers=session)
                )
                assert answer["result"].get("isError") is not True

            first = tool_call(7, "get_context", {"session_key": "big", "limit": 10})
            async with http.stream("POST", server.url, json=first, headers=session) as slow:
                assert slow.status_code == 200
                for duplicate_id in (7, "7"):
                    duplicate = tool_call(duplicate_id, "get_session", {"session_key": "big"})
                    with anyio.fail_after(5):
                        refused = await http.post(server.url, json=duplicate, headers=session)
                    assert refused.status_code == 400
                    body = refused.json()
                    assert body["id"] == duplicate_id
                    assert body["error"]["code"] == -32600
                    assert f"request id {json.dumps(duplicate_id)} is already in flight" in body["error"]["message"]
                with anyio.fail_after(30):
                    await slow.aread()
            entries = answer_of(slow)["result"]["structuredContent"]["entries"]
            assert [e["content"][:1] for e in entries] == ["a", "b"]
            assert all(len(e["content"]) == 7 * MIB for e in entries)

            again = await http.post(
                server.url, json=tool_call(7, "get_session", {"session_key": "big"}), headers=session
            )
            assert answer_of(again)["result"]["structuredContent"]["session"]["session_key"] == "big"


async def test_eight_concurrent_calls_with_one_id_each_get_an_answer(tmp_path: Path) -> None:
    with http_server(f"sqlite:///{tmp_path / 'e.db'}") as server:
        async with httpx.AsyncClient(timeout=60) as http:
            session = await open_session(http, server.url)
            register = tool_call(1, "register_session", {"session_key": "s", "source_agent": "a"})
            assert "result" in answer_of(await http.post(server.url, json=register, headers=session))
            answers: list[dict[str, object]] = []

            async def call() -> None:
                response = await http.post(
                    server.url, json=tool_call(5, "get_session", {"session_key": "s"}), headers=session
                )
                answers.append(answer_of(response))

            with anyio.fail_after(20):  # before the fix, seven of them never got an answer
                async with anyio.create_task_group() as tg:
                    for _ in range(8):
                        tg.start_soon(call)
            assert len(answers) == 8
            assert all(a["id"] == 5 for a in answers)
            results = [a for a in answers if "result" in a]
            refusals = [a for a in answers if "error" in a]
            assert results, answers
            assert all(a["error"]["code"] == -32600 for a in refusals)  # type: ignore[index]
            assert all(r["result"]["structuredContent"]["session"]["session_key"] == "s" for r in results)  # type: ignore[index]
