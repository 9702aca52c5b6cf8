"""The agent's own note over MCP: the prepare_handoff prompt, the note in the brief, bad notes,
and secrets redacted on the way in through the tools."""

from __future__ import annotations

import pytest
from mcp.client import Client

from handoff.container import Container
from tests.conftest import structured, tool_error

pytestmark = pytest.mark.anyio


async def seed(client: Client) -> None:
    structured(await client.call_tool("register_session", {"session_key": "csv", "source_agent": "claude"}))
    for kind, content, meta in (
        ("message", "Make the CSV importer stream rows. Never load the whole file.", {"role": "user"}),
        ("message", "The root cause is that parse_row() compiles its regex per row.", {"role": "assistant"}),
        (
            "tool_call",
            "FAILED tests/test_csv.py::test_bom - UnicodeError\n1 failed, 4 passed in 0.2s",
            {"tool": "bash", "command": "pytest -q"},
        ),
    ):
        structured(
            await client.call_tool(
                "update_context", {"session_key": "csv", "context_type": kind, "content": content, "metadata": meta}
            )
        )


async def test_prepare_handoff_shows_the_extract_and_asks_for_the_note(client: Client) -> None:
    await seed(client)
    prompt = await client.get_prompt("prepare_handoff", {"session_key": "csv"})
    text = prompt.messages[0].content.text  # type: ignore[union-attr]
    assert "tests/test_csv.py::test_bom" in text and "parse_row()" in text
    assert "request_handoff" in text and "next_steps" in text and "rejected" in text


async def test_the_note_leads_the_brief_and_is_stored_with_the_handoff(client: Client) -> None:
    await seed(client)
    note = {
        "goal": "Streaming CSV import under 100 MB RSS",
        "state": "streaming works; BOM handling broken",
        "rejected": ["pandas.read_csv: loads everything"],
        "next_steps": ["strip \\ufeff in parse_header()"],
    }
    result = structured(
        await client.call_tool(
            "request_handoff", {"session_key": "csv", "target_agent": "codex", "note": note, "token_budget": 1500}
        )
    )["handoff"]
    brief = result["brief"]
    assert brief.index("Handoff note from the agent") < brief.index("Task (the user's request)")
    for must in ("Streaming CSV import", "pandas.read_csv", "parse_header()", "tests/test_csv.py::test_bom"):
        assert must in brief
    assert result["note"]["goal"] == note["goal"]
    again = structured(await client.call_tool("get_handoff", {"handoff_id": result["handoff_id"]}))["handoff"]
    assert again["note"] == result["note"] and again["brief"] == brief


@pytest.mark.parametrize(
    ("note", "field"),
    [
        ({"goal": 5}, "note.goal"),
        ({"next_steps": "x", "decisions": [None]}, "note.decisions[0]"),
        ({"mood": "great"}, "note.mood"),
        ({"text": "y" * 9000}, "note.text"),
        (["a list"], "note"),
    ],
)
async def test_a_bad_note_is_invalid_input_naming_the_field(client: Client, note: object, field: str) -> None:
    await seed(client)
    error = tool_error(
        await client.call_tool("request_handoff", {"session_key": "csv", "target_agent": "codex", "note": note})
    )
    assert error["code"] == "invalid_input" and error["details"]["field"] == field
    # Nothing was handed off: the session still belongs to its owner.
    session = structured(await client.call_tool("get_session", {"session_key": "csv"}))["session"]
    assert session["owner_agent"] == "claude"


async def test_secrets_sent_through_update_context_are_redacted_and_counted(
    client: Client, container: Container
) -> None:
    await seed(client)
    receipt = structured(
        await client.call_tool(
            "update_context",
            {
                "session_key": "csv",
                "context_type": "tool_call",
                "content": "$ env\nGITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789\nHOME=/root",
                "metadata": {"tool": "bash", "note": "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345"},
            },
        )
    )
    page = structured(await client.call_tool("get_context", {"session_key": "csv", "cursor": None}))
    stored = page["entries"][-1]
    assert "ghp_" not in stored["content"] and "[REDACTED:github_token]" in stored["content"]
    assert "abcdefghijklmnopqrstuvwxyz012345" not in stored["metadata"]["note"]
    counts = stored["metadata"]["redacted"]
    assert counts["github_token"] == 1 and sum(counts.values()) == 2
    assert receipt["entry"]["sequence_number"] == 4
    metrics = container.metrics.render().decode()
    assert 'handoff_secrets_redacted_total{kind="github_token"}' in metrics
