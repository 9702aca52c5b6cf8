"""analyze_codebase end to end through the in-memory MCP client, on a real SQLite file."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client

from handoff.config import Settings
from handoff.container import Container
from handoff.mcp.server import build_server
from tests.analysis.conftest import SAMPLE
from tests.conftest import structured, tool_error

pytestmark = pytest.mark.anyio


@pytest.fixture
async def analysis_client(settings: Settings, tmp_path: Path) -> AsyncIterator[Client]:
    # Configured as an operator would: the sample project and a scratch dir are the analysis roots.
    (tmp_path / "scratch").mkdir()
    settings.analysis.roots = [SAMPLE, tmp_path / "scratch"]
    async with Container.build(settings) as container, Client(build_server(container)) as connected:
        yield connected


async def register(client: Client, key: str = "s1") -> None:
    structured(await client.call_tool("register_session", {"session_key": key, "source_agent": "agent-a"}))


async def call(client: Client, args: dict[str, Any], **kwargs: Any) -> Any:
    with anyio.fail_after(60):
        return await client.call_tool("analyze_codebase", args, **kwargs)


async def test_tool_is_advertised_with_input_and_output_schemas(analysis_client: Client) -> None:
    tools = {t.name: t for t in (await analysis_client.list_tools()).tools}
    tool = tools["analyze_codebase"]
    assert tool.input_schema["required"] == ["session_key", "file_paths"]
    assert tool.input_schema["properties"]["analysis_type"]["enum"] == ["syntax", "dependencies", "structure", "full"]
    assert "ctx" not in tool.input_schema["properties"]
    assert tool.output_schema is not None and set(tool.output_schema["required"]) >= {"analysis", "entry"}


async def test_full_analysis_is_returned_and_stored_as_one_file_entry(analysis_client: Client) -> None:
    await register(analysis_client)
    out = structured(
        await call(analysis_client, {"session_key": "s1", "file_paths": ["sample"], "analysis_type": "full"})
    )
    analysis = out["analysis"]
    paths = [f["path"] for f in analysis["files"]]
    assert len(paths) == 23 and "sample/py/app/models.py" in paths
    assert analysis["errors"] == []
    assert {"source": "sample/py/app/main.py", "target": "sample/py/app/models.py"} in (
        analysis["consolidated"]["module_graph"]["edges"]
    )
    assert out["entry"]["sequence_number"] == 1 and out["entry"]["context_type"] == "file"
    assert out["stored_in_full"] is True

    page = structured(await analysis_client.call_tool("get_context", {"session_key": "s1"}))
    (entry,) = page["entries"]
    assert entry["context_type"] == "file"
    stored = json.loads(entry["content"])
    assert [f["path"] for f in stored["files"]] == paths
    assert [s["qualified_name"] for f in stored["files"] for s in f["symbols"]] == [
        s["qualified_name"] for f in analysis["files"] for s in f["symbols"]
    ]
    assert stored["consolidated"]["module_graph"] == analysis["consolidated"]["module_graph"]
    meta = entry["metadata"]
    assert (meta["kind"], meta["analysis_type"]) == ("analysis", "full")
    summary = meta["summary"]
    assert summary["file_count"] == 23 and summary["files"] == paths
    assert summary["top_symbols"][:2] == ["node", "Item"]
    assert len(summary["top_symbols"]) == 15
    assert summary["error_count"] == 0
    assert len(json.dumps(meta)) < 8 * 1024


async def test_progress_notifications_are_sent_when_many_files_are_touched(analysis_client: Client) -> None:
    await register(analysis_client)
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    args = {"session_key": "s1", "file_paths": ["sample"], "analysis_type": "structure"}
    structured(await call(analysis_client, args, progress_callback=on_progress))
    assert len(seen) == 23
    assert seen[-1] == (23, 23)
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)


async def test_few_files_send_no_progress(analysis_client: Client) -> None:
    await register(analysis_client)
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    args = {"session_key": "s1", "file_paths": ["sample/py/app/util.py"]}
    structured(await call(analysis_client, args, progress_callback=on_progress))
    assert seen == []


async def test_unknown_session_is_not_found(analysis_client: Client) -> None:
    error = tool_error(await call(analysis_client, {"session_key": "ghost", "file_paths": ["sample"]}))
    assert error["code"] == "not_found"


async def test_completed_session_is_rejected_before_analysis(analysis_client: Client) -> None:
    await register(analysis_client)
    structured(await analysis_client.call_tool("complete_session", {"session_key": "s1"}))
    error = tool_error(await call(analysis_client, {"session_key": "s1", "file_paths": ["sample"]}))
    assert error["code"] == "invalid_state"
    assert error["details"]["status"] == "completed"


async def test_wrong_analysis_type_and_empty_paths_are_rejected(analysis_client: Client) -> None:
    await register(analysis_client)
    bad_type = await call(analysis_client, {"session_key": "s1", "file_paths": ["x"], "analysis_type": "deep"})
    assert bad_type.is_error
    empty = await call(analysis_client, {"session_key": "s1", "file_paths": []})
    assert empty.is_error


async def test_hostile_paths_each_get_their_reason_and_the_server_keeps_serving(
    analysis_client: Client, tmp_path: Path
) -> None:
    await register(analysis_client)
    scratch = tmp_path / "scratch"
    os.mkfifo(scratch / "pipe.py")
    (scratch / "out.py").symlink_to("/etc/passwd")
    (scratch / "loop.py").symlink_to(scratch / "loop.py")
    with open(scratch / "huge.py", "wb") as f:
        f.truncate(10 * 1024**3)
    (scratch / "bin.py").write_bytes(b"\x00\x01\x02")
    (scratch / "bad.py").write_bytes(b"\xff\xfe = 1\n")
    paths = [
        "../../etc/passwd",
        "/etc/passwd",
        "/dev/zero",
        "scratch/pipe.py",
        "scratch/out.py",
        "scratch/loop.py",
        "scratch/huge.py",
        "scratch/bin.py",
        "scratch/bad.py",
        "sample/notes.txt",
        "sample/py/app/util.py",
    ]
    out = structured(await call(analysis_client, {"session_key": "s1", "file_paths": paths}))
    assert {e["path"]: e["reason"] for e in out["analysis"]["errors"]} == {
        "../../etc/passwd": "outside_roots",
        "/etc/passwd": "outside_roots",
        "/dev/zero": "outside_roots",
        "scratch/pipe.py": "not_regular_file",
        "scratch/out.py": "outside_roots",
        "scratch/loop.py": "symlink_loop",
        "scratch/huge.py": "too_large",
        "scratch/bin.py": "binary",
        "scratch/bad.py": "invalid_encoding",
        "sample/notes.txt": "unsupported_language",
    }
    assert [f["path"] for f in out["analysis"]["files"]] == ["sample/py/app/util.py"]
    assert "root:" not in json.dumps(out)  # nothing of /etc/passwd leaked
    session = structured(await analysis_client.call_tool("get_session", {"session_key": "s1"}))
    assert session["session"]["entry_count"] == 1


async def test_brief_of_a_later_handoff_mentions_analysed_files_and_key_symbols(analysis_client: Client) -> None:
    """Needs the digest/brief change proposed with this tool (metadata.kind == "analysis")."""
    await register(analysis_client)
    args = {"session_key": "s1", "file_paths": ["sample/py", "sample/go"], "analysis_type": "full"}
    structured(await call(analysis_client, args))
    handoff = structured(
        await analysis_client.call_tool("request_handoff", {"session_key": "s1", "target_agent": "agent-b"})
    )["handoff"]
    assert "sample/py/app/models.py" in handoff["brief"]
    assert "User" in handoff["brief"] and "Store" in handoff["brief"]


async def test_the_analysis_service_starts_and_stops_the_workers(settings: Settings) -> None:
    """What the server does at start-up and shutdown: after `close`, calls are refused, not hung."""
    settings.analysis.roots = [SAMPLE]
    async with Container.build(settings) as container, Client(build_server(container)) as client:
        await register(client)
        await container.analysis.start()
        args = {"session_key": "s1", "file_paths": ["py/app/util.py"]}
        assert structured(await call(client, args))["analysis"]["files"][0]["path"] == "py/app/util.py"
        await container.analysis.close()
        assert tool_error(await call(client, args))["code"] == "unavailable"
