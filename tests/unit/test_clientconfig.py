"""`handoff config CLIENT`: every snippet parses in its client's format and names the absolute command."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from handoff.clientconfig import CLIENTS, add_commands, default_url, render, server_command
from handoff.config import HttpSettings, Settings
from handoff.errors import InvalidInput
from tests.unit.test_architecture import PACKAGE_DIR, STDLIB, imports_of

HTTP_CLIENTS = [c for c in CLIENTS if c != "claude-desktop"]
COMMAND = ["/opt/handoff/bin/handoff", "stdio"]
URL = "http://127.0.0.1:8765/mcp"


def entry_of(client: str, text: str) -> dict[str, Any]:
    """What the client would read from the snippet: {"command", "args"} or {"url"}; the shape is checked."""
    if client == "claude-code":
        argv = shlex.split(text)
        assert argv[:3] == ["claude", "mcp", "add"]
        if "--" in argv:
            assert argv[3:5] == ["handoff", "--"], argv  # options before the name, the command after --
            return {"command": argv[5], "args": argv[6:]}
        assert argv[3:6] == ["--transport", "http", "handoff"] and len(argv) == 7, argv
        return {"url": argv[6]}
    if client == "codex":
        document = tomllib.loads(text)
        assert list(document) == ["mcp_servers"] and list(document["mcp_servers"]) == ["handoff"]
        entry = dict(document["mcp_servers"]["handoff"])
    else:
        document = json.loads(text)
        top = "servers" if client == "vscode" else "mcpServers"
        assert list(document) == [top] and list(document[top]) == ["handoff"]
        entry = dict(document[top]["handoff"])
        if client == "vscode":
            assert entry.pop("type") == ("http" if "url" in entry else "stdio")
    assert set(entry) in ({"command", "args"}, {"url"}), entry
    return entry


def cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="handoff")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


# -- the snippets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_stdio_snippet_parses_and_starts_the_absolute_command_with_stdio(client: str) -> None:
    snippet = render(client, "stdio", COMMAND, URL)
    assert entry_of(client, snippet.text) == {"command": "/opt/handoff/bin/handoff", "args": ["stdio"]}
    assert "\n" not in snippet.hint and snippet.hint


@pytest.mark.parametrize("client", HTTP_CLIENTS)
def test_http_snippet_parses_and_names_the_url(client: str) -> None:
    snippet = render(client, "http", COMMAND, URL)
    assert entry_of(client, snippet.text) == {"url": URL}
    assert "/opt/handoff" not in snippet.text
    assert "handoff serve" in snippet.hint


@pytest.mark.parametrize(
    ("client", "file"),
    [
        ("claude-desktop", "claude_desktop_config.json"),
        ("cursor", ".cursor/mcp.json"),
        ("vscode", ".vscode/mcp.json"),
        ("codex", ".codex/config.toml"),
        ("claude-code", "terminal"),
    ],
)
def test_the_hint_says_where_the_snippet_goes(client: str, file: str) -> None:
    assert file in render(client, "stdio", COMMAND, URL).hint


def test_claude_desktop_over_http_is_refused_with_the_stdio_way_instead() -> None:
    with pytest.raises(InvalidInput) as raised:
        render("claude-desktop", "http", COMMAND, URL)
    assert "handoff config claude-desktop" in raised.value.message
    assert "stdio" in raised.value.message


@pytest.mark.parametrize("client", CLIENTS)
def test_awkward_paths_survive_every_format(client: str) -> None:
    # Spaces, quotes, backslashes (Windows), a control character and non-ASCII: each format escapes its own way.
    program = 'C:\\Program Files\\my "tools"\\hand\toff-é\U0001f600\x7f.exe'
    snippet = render(client, "stdio", [program, "-m", "handoff", "stdio"], URL)
    assert entry_of(client, snippet.text) == {"command": program, "args": ["-m", "handoff", "stdio"]}


def test_unknown_client_or_transport_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="windsurf"):
        render("windsurf", "stdio", COMMAND, URL)
    with pytest.raises(InvalidInput, match="sse"):
        render("cursor", "sse", COMMAND, URL)


# -- where the server is --------------------------------------------------------------------------


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_the_command_next_to_the_interpreter_wins(tmp_path: Path) -> None:
    python = _executable(tmp_path / "python")
    script = _executable(tmp_path / ("handoff.exe" if os.name == "nt" else "handoff"))
    assert server_command(str(python), which=lambda _: "/elsewhere/handoff") == [str(script), "stdio"]


def test_without_one_next_to_the_interpreter_the_one_on_path_is_used(tmp_path: Path) -> None:
    python = _executable(tmp_path / "python")
    found = server_command(str(python), which=lambda name: f"relative/bin/{name}")
    assert found == [os.path.abspath("relative/bin/handoff"), "stdio"]
    assert Path(found[0]).is_absolute()


def test_without_any_handoff_command_the_interpreter_runs_the_package(tmp_path: Path) -> None:
    python = _executable(tmp_path / "python")
    assert server_command(str(python), which=lambda _: None) == [str(python), "-m", "handoff", "stdio"]


def test_in_this_environment_the_command_is_the_installed_script() -> None:
    command = server_command()
    assert command == [str(Path(sys.executable).with_name("handoff")), "stdio"]


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:9000/mcp"),
        ("0.0.0.0", "http://127.0.0.1:9000/mcp"),
        ("::", "http://127.0.0.1:9000/mcp"),
        ("::1", "http://[::1]:9000/mcp"),
        ("handoff.internal", "http://handoff.internal:9000/mcp"),
    ],
)
def test_default_url_follows_the_http_settings(host: str, url: str) -> None:
    assert default_url(HttpSettings(host=host, port=9000)) == url


# -- the command ----------------------------------------------------------------------------------


def test_command_prints_only_the_snippet_on_stdout_and_the_hint_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = cli(["config", "cursor"])
    args.run(Settings(), args)
    out, err = capsys.readouterr()
    assert entry_of("cursor", out) == {"command": server_command()[0], "args": ["stdio"]}
    assert Path(server_command()[0]).is_absolute()
    assert err.count("\n") == 1 and "mcp.json" in err


def test_command_http_uses_the_configured_port_and_a_loopback_host(capsys: pytest.CaptureFixture[str]) -> None:
    args = cli(["config", "codex", "--transport", "http"])
    args.run(Settings(http=HttpSettings(host="0.0.0.0", port=9123)), args)
    assert entry_of("codex", capsys.readouterr().out) == {"url": "http://127.0.0.1:9123/mcp"}


def test_command_url_implies_http(capsys: pytest.CaptureFixture[str]) -> None:
    args = cli(["config", "vscode", "--url", "https://handoff.example/mcp"])
    args.run(Settings(), args)
    assert entry_of("vscode", capsys.readouterr().out) == {"url": "https://handoff.example/mcp"}


@pytest.mark.parametrize(
    "argv",
    [
        ["config", "cursor", "--transport", "stdio", "--url", "http://127.0.0.1:1/mcp"],
        ["config", "cursor", "--url", "127.0.0.1:8765/mcp"],
        ["config", "claude-desktop", "--transport", "http"],
    ],
)
def test_command_rejects_contradictions_with_invalid_input(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    args = cli(argv)
    with pytest.raises(InvalidInput):
        args.run(Settings(), args)
    assert capsys.readouterr().out == ""  # nothing half-printed to paste


def test_bad_client_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(["config", "windsurf"])
    assert exited.value.code == 2
    assert "invalid choice: 'windsurf'" in capsys.readouterr().err


def test_bad_transport_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(["config", "cursor", "--transport", "sse"])
    assert exited.value.code == 2
    assert "invalid choice: 'sse'" in capsys.readouterr().err


# -- cheap to import ------------------------------------------------------------------------------


def test_clientconfig_imports_only_the_standard_library_config_and_errors() -> None:
    bad = [
        str(imp)
        for imp in imports_of(PACKAGE_DIR / "clientconfig.py")
        if imp.target.split(".")[0] not in STDLIB and not imp.target.startswith(("handoff.config.", "handoff.errors."))
    ]
    assert bad == []


def test_importing_clientconfig_loads_no_server_machinery() -> None:
    probe = "import sys, handoff.clientconfig; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    modules = set(json.loads(loaded.stdout.replace("'", '"')))
    assert "handoff" in modules
    assert modules.isdisjoint({"mcp", "anyio", "sqlalchemy", "starlette", "uvicorn", "rich", "structlog"})
