"""`handoff config CLIENT`: what to paste so an MCP client starts or reaches this server.

stdout carries exactly the snippet (a JSON or TOML document, or a shell command), so it can be
piped to a file or the clipboard as it is; the one line saying where it belongs goes to stderr.
A stdio snippet names the absolute path of the `handoff` command that is running now, because
desktop clients start servers with a bare environment in which a virtualenv's `bin` is not on
PATH.

Claude Desktop gets stdio only. Its config file launches local processes and ignores servers
given by URL; remote servers are added in its settings as connectors, and those are reached from
Anthropic's cloud, so a loopback URL cannot work there either. A stdio server started with the
same database settings sees the same sessions as the HTTP one, so no bridge is needed.

Rendering is a pure function (`render`); only `run` looks at the interpreter, PATH and settings.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from handoff.config import HttpSettings, Settings
from handoff.errors import InvalidInput

CLIENTS = ("claude-code", "claude-desktop", "cursor", "vscode", "codex")
TRANSPORTS = ("stdio", "http")
SERVER_NAME = "handoff"
STDIO_ARGS = ("stdio",)
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


@dataclass(frozen=True, slots=True)
class Snippet:
    text: str  # exactly what the user pastes; printed alone on stdout
    hint: str  # where it goes, one line for stderr


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = commands.add_parser(
        "config",
        help="Print the snippet that connects an MCP client (Claude Code, Cursor, ...) to this server.",
        description=(
            "Print the configuration snippet or command for an MCP client, naming the absolute path of "
            "this handoff command. The snippet alone goes to stdout; where to put it goes to stderr."
        ),
    )
    config.add_argument("client", choices=CLIENTS, help="The MCP client to configure.")
    config.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default=None,
        help="stdio: the client starts `handoff stdio` itself (default). http: it connects to a running server.",
    )
    config.add_argument(
        "--url",
        help="The running server's MCP endpoint (implies --transport http; default from HANDOFF_HTTP__HOST/PORT).",
    )
    config.set_defaults(run=_config_command)


def _config_command(settings: Settings, args: argparse.Namespace) -> None:
    transport: str = args.transport or ("http" if args.url else "stdio")
    if transport == "stdio" and args.url:
        raise InvalidInput("--url is for --transport http; a stdio client starts the server itself")
    url = check_url(args.url) if args.url else default_url(settings.http)
    snippet = render(args.client, transport, server_command(), url)
    print(snippet.hint, file=sys.stderr)
    print(snippet.text)


# -- where the server is --------------------------------------------------------------------------


def server_command(python: str | None = None, which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """The argv a client runs to start the stdio server, with an absolute program path.

    First the `handoff` script installed next to this interpreter (a virtualenv's bin), then the
    one on PATH, and last this interpreter running the package (`python -m handoff stdio`).
    """
    python = os.path.abspath(python or sys.executable)  # not resolved: a venv's python is a symlink
    script = Path(python).with_name("handoff.exe" if os.name == "nt" else "handoff")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), *STDIO_ARGS]
    found = which("handoff")
    if found:
        return [os.path.abspath(found), *STDIO_ARGS]
    return [python, "-m", "handoff", *STDIO_ARGS]


def default_url(http: HttpSettings) -> str:
    """The URL a local client uses for the server `handoff serve` would start with these settings."""
    host = http.host.strip()
    if host in _WILDCARD_HOSTS:
        host = "127.0.0.1"  # bound to every interface: loopback is one of them
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"http://{host}:{http.port}/mcp"


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"--url must be an http:// or https:// URL of the server's MCP endpoint, not {url!r}")
    return url


# -- the snippets ---------------------------------------------------------------------------------


def render(client: str, transport: str, command: Sequence[str], url: str) -> Snippet:
    """The snippet for `client`: `command` (argv) starts a stdio server, `url` reaches an HTTP one."""
    if client not in CLIENTS:
        raise InvalidInput(f"unknown client {client!r}; choose one of: {', '.join(CLIENTS)}")
    if transport not in TRANSPORTS:
        raise InvalidInput(f"unknown transport {transport!r}; choose one of: {', '.join(TRANSPORTS)}")
    if not command:
        raise InvalidInput("the server command is empty")
    program, args = command[0], list(command[1:])
    stdio = transport == "stdio"
    if client == "claude-code":
        text = (
            shlex.join(["claude", "mcp", "add", SERVER_NAME, "--", program, *args])
            if stdio
            else shlex.join(["claude", "mcp", "add", "--transport", "http", SERVER_NAME, url])
        )
        where = "Run this in a terminal (put `--scope user` before the name to use it in every project)."
    elif client == "claude-desktop":
        if not stdio:
            raise InvalidInput(
                "Claude Desktop's config file only starts local (stdio) servers, and its remote connectors "
                "are reached from Anthropic's cloud, not this machine. Use `handoff config claude-desktop` "
                "(stdio): with the same database settings it sees the same sessions as the HTTP server."
            )
        text = _json({"mcpServers": {SERVER_NAME: {"command": program, "args": args}}})
        where = f'Merge into {_claude_desktop_file()} under "mcpServers", then restart Claude Desktop.'
    elif client == "cursor":
        entry: dict[str, Any] = {"command": program, "args": args} if stdio else {"url": url}
        text = _json({"mcpServers": {SERVER_NAME: entry}})
        where = 'Merge into ~/.cursor/mcp.json (every project) or .cursor/mcp.json (one project) under "mcpServers".'
    elif client == "vscode":
        entry = {"type": "stdio", "command": program, "args": args} if stdio else {"type": "http", "url": url}
        text = _json({"servers": {SERVER_NAME: entry}})
        where = 'Merge into .vscode/mcp.json (or "MCP: Open User Configuration" for all workspaces) under "servers".'
    else:  # codex
        table = (
            [f"command = {_toml_string(program)}", f"args = [{', '.join(map(_toml_string, args))}]"]
            if stdio
            else [f"url = {_toml_string(url)}"]
        )
        text = "\n".join([f"[mcp_servers.{SERVER_NAME}]", *table])
        where = "Append to ~/.codex/config.toml (or .codex/config.toml in a trusted project)."
    return Snippet(text=text, hint=where if stdio else f"{where} The server must be running: `handoff serve`.")


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


def _toml_string(value: str) -> str:
    """A TOML basic string: quote and backslash escaped, control characters as \\uXXXX."""
    out = ['"']
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _claude_desktop_file() -> str:
    if sys.platform == "darwin":
        return "~/Library/Application Support/Claude/claude_desktop_config.json"
    if sys.platform == "win32":
        return r"%APPDATA%\Claude\claude_desktop_config.json"
    return "claude_desktop_config.json (Settings > Developer > Edit Config in Claude Desktop)"
