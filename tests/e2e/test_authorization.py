"""The authorization table of the README, run cell by cell over HTTP against two real replicas, with
bearer tokens and with OAuth access tokens from a real authorization server.

Five agents hold a token each and one role in alice's session: alice owns it, carol collaborates,
rita has a read copy, tom is the target of pending handoffs, sam has nothing to do with it. They
are spread over two replicas of one database, so a right granted on one is enforced on the other.
Every action of the table is tried by every one of them; the outcomes (allowed, or `forbidden`)
must be exactly the table's. The table is read from the README, so the documentation cannot drift
from what the server does. Actions that change state run with the allowed agent last, after
everyone who must be refused has been.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError

from tests.conftest import structured, tool_error
from tests.e2e.oidc_provider import Provider, oidc_provider
from tests.e2e.servers import ServerDatabase, http_server
from tests.e2e.test_auth import TOKENS, cli, client_as, create_token
from tests.e2e.test_oauth import RESOURCE, oauth_env

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parents[2] / "README.md"
ROLES = ("owner", "collaborator", "reader", "handoff target", "anyone else")
AGENTS = {"owner": "alice", "collaborator": "carol", "reader": "rita", "handoff target": "tom", "anyone else": "sam"}
SESSION = "shared-work"


def documented_table() -> dict[str, tuple[bool, ...]]:
    """The README's table: first cell → one yes/no per role, in ROLES order."""
    lines = README.read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| action | owner |"))
    assert [c.strip() for c in lines[header].strip("|").split("|")][1:] == list(ROLES)
    table: dict[str, tuple[bool, ...]] = {}
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert set(cells[1:]) <= {"yes", "no"}, line
        table[cells[0]] = tuple(c == "yes" for c in cells[1:])
    return table


Outcome = bool  # True: allowed; False: refused as forbidden (anything else fails the test)


async def tool(client: Client, name: str, **arguments: Any) -> Outcome:
    result = await client.call_tool(name, arguments)
    if not result.is_error:
        return True
    error = tool_error(result)
    assert error["code"] == "forbidden", f"{name}: {error}"
    return False


async def resource(client: Client, uri: str) -> Outcome:
    try:
        await client.read_resource(uri)
    except MCPError as refused:
        assert isinstance(refused.error.data, dict) and refused.error.data.get("code") == "forbidden", refused
        return False
    return True


async def prompt(client: Client, name: str, **arguments: str) -> Outcome:
    try:
        await client.get_prompt(name, arguments)
    except MCPError as refused:
        assert isinstance(refused.error.data, dict) and refused.error.data.get("code") == "forbidden", refused
        return False
    return True


Try = Callable[[Client, str], Awaitable[Outcome]]


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with oidc_provider(RESOURCE) as running:
        yield running


@pytest.mark.parametrize("mode", ["tokens", "oauth"])
async def test_every_cell_of_the_authorization_table_holds_over_http(
    server_db: ServerDatabase, mode: str, request: pytest.FixtureRequest
) -> None:
    documented = documented_table()
    if mode == "tokens":
        env = TOKENS
        tokens = {role: create_token(server_db, agent)["token"] for role, agent in AGENTS.items()}
    else:
        issuer: Provider = request.getfixturevalue("provider")
        env = oauth_env(issuer)
        tokens = {role: issuer.access_token(agent, resource=RESOURCE) for role, agent in AGENTS.items()}
    with http_server(server_db, **env) as one, http_server(server_db, **env) as two, anyio.fail_after(240):
        async with AsyncExitStack() as stack:
            # Alternate replicas: alice hands off on one, tom answers on the other, and so on.
            replica = {role: (one, two)[i % 2].url for i, role in enumerate(ROLES)}
            as_role = {role: await stack.enter_async_context(client_as(replica[role], t)) for role, t in tokens.items()}
            alice = as_role["owner"]

            async def hand(kind: str, to: str, key: str = SESSION) -> str:
                made = structured(
                    await alice.call_tool(
                        "request_handoff", {"session_key": key, "target_agent": to, "handoff_type": kind}
                    )
                )
                return str(made["handoff"]["handoff_id"])

            structured(await alice.call_tool("register_session", {"session_key": SESSION, "source_agent": "alice"}))
            structured(
                await alice.call_tool(
                    "update_context", {"session_key": SESSION, "context_type": "message", "content": "hello world"}
                )
            )
            for kind, role in (("collaboration", "collaborator"), ("context_transfer", "reader")):
                accepted = await hand(kind, AGENTS[role])
                structured(
                    await as_role[role].call_tool("accept_handoff", {"handoff_id": accepted, "agent": AGENTS[role]})
                )
            # Pending handoffs to tom, one per action that answers one (each answer uses one up).
            for key in ("second", "third"):
                structured(await alice.call_tool("register_session", {"session_key": key, "source_agent": "alice"}))
            # context_transfer: its target holds only reading, so the column tests being the target alone
            # (a pending full_handoff or collaboration already grants its rights, see the README).
            to_accept = await hand("context_transfer", "tom")
            to_decline = await hand("context_transfer", "tom", "second")
            to_resume = await hand("context_transfer", "tom", "third")
            roles = structured(await alice.call_tool("get_session", {"session_key": SESSION}))["session"]
            assert {p["agent"]: p["role"] for p in roles["participants"]} == {
                "alice": "owner",
                "carol": "collaborator",
                "rita": "reader",
                "tom": "reader",
            }

            reads: list[Try] = [
                lambda c, me: tool(c, "get_session", session_key=SESSION),
                lambda c, me: tool(c, "get_context", session_key=SESSION),
                lambda c, me: tool(c, "get_lifecycle", session_key=SESSION),
                lambda c, me: tool(c, "search_context", query="hello", session_key=SESSION),
                lambda c, me: tool(c, "get_handoff", handoff_id=to_accept),
                lambda c, me: tool(c, "list_handoffs", session_key=SESSION),
                lambda c, me: tool(c, "list_sessions"),
                lambda c, me: resource(c, f"handoff://sessions/{SESSION}"),
                lambda c, me: resource(c, f"handoff://sessions/{SESSION}/context"),
                lambda c, me: resource(c, f"handoff://sessions/{SESSION}/lifecycle"),
                lambda c, me: resource(c, f"handoff://handoffs/{to_accept}"),
                lambda c, me: prompt(c, "prepare_handoff", session_key=SESSION),
            ]
            # In the order they run: the destructive ones last, each one's allowed agent after the refused.
            rows: list[tuple[str, list[Try]]] = [
                ("reads:", reads),
                ("your own inbox", [lambda c, me: resource(c, f"handoff://agents/{me}/inbox")]),
                ("another agent's inbox", [lambda c, me: resource(c, "handoff://agents/nobody/inbox")]),
                (
                    "`register_session`",
                    [lambda c, me: tool(c, "register_session", session_key=f"own-{me}", source_agent=me)],
                ),
                (
                    "`update_context`",
                    [
                        lambda c, me: tool(
                            c, "update_context", session_key=SESSION, context_type="message", content=f"from {me}"
                        )
                    ],
                ),
                (
                    "`request_handoff`, `complete_session`, `set_retention_policy`",
                    [
                        lambda c, me: tool(
                            c,
                            "request_handoff",
                            session_key=SESSION,
                            target_agent="zed",
                            handoff_type="context_transfer",
                        ),
                        lambda c, me: tool(
                            c, "set_retention_policy", session_key=SESSION, retention_policy="extended", actor=me
                        ),
                    ],
                ),
                (
                    "`accept_handoff`, `decline_handoff`, `resume_handoff`",
                    [
                        lambda c, me: tool(c, "accept_handoff", handoff_id=to_accept, agent=me),
                        lambda c, me: tool(c, "decline_handoff", handoff_id=to_decline, agent=me, reason="not mine"),
                        lambda c, me: prompt(c, "resume_handoff", handoff_id=to_resume, agent=me),
                    ],
                ),
                ("`complete_handoff`", [lambda c, me: tool(c, "complete_handoff", handoff_id=to_accept, agent=me)]),
                # complete_session ends the session's writes: it runs last of all.
                (
                    "`request_handoff`, `complete_session`, `set_retention_policy`",
                    [lambda c, me: tool(c, "complete_session", session_key=SESSION)],
                ),
            ]
            observed: dict[str, tuple[bool, ...]] = {}
            for label, tries in rows:
                key = next((k for k in documented if k.startswith(label)), None)
                assert key is not None, f"the README's table has no row for {label}"
                expected = documented[key]
                # Refused agents first, so an allowed call cannot change what they are refused.
                order = sorted(range(len(ROLES)), key=lambda i: expected[i])
                for attempt in tries:
                    outcomes: list[bool] = [False] * len(ROLES)
                    for i in order:
                        outcomes[i] = await attempt(as_role[ROLES[i]], AGENTS[ROLES[i]])
                    observed[key] = tuple(outcomes)
                    assert observed[key] == expected, f"{key}: " + ", ".join(
                        f"{r}={'yes' if o else 'no'}" for r, o in zip(ROLES, outcomes, strict=True)
                    )
            assert set(observed) == set(documented), "a row of the README's table was not tried"
            assert re.search(r"handoff sessions retention", README.read_text())


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_an_operator_changes_any_sessions_retention_from_the_command_line(server_db: ServerDatabase) -> None:
    token = create_token(server_db, "alice")["token"]
    with http_server(server_db, **TOKENS) as server, anyio.fail_after(60):
        async with client_as(server.url, token) as alice:
            structured(await alice.call_tool("register_session", {"session_key": "held", "source_agent": "alice"}))
        done = cli(server_db, "sessions", "retention", "held", "legal_hold", "--actor", "compliance")
        assert done.returncode == 0, done.stderr
        assert "legal_hold" in done.stdout
        async with client_as(server.url, token) as alice:
            session = structured(await alice.call_tool("get_session", {"session_key": "held"}))["session"]
            assert session["retention_policy"] == "legal_hold"
            events = structured(await alice.call_tool("get_lifecycle", {"session_key": "held"}))["events"]
            assert events[-1]["actor"] == "compliance" and "legal_hold" in events[-1]["reason"]
    missing = cli(server_db, "sessions", "retention", "nowhere", "short")
    assert missing.returncode != 0 and "nowhere" in missing.stderr
