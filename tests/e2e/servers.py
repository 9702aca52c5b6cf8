"""Starting the real server the way users do: `handoff serve` as a subprocess (HTTP or stdio)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mcp.client.stdio import StdioServerParameters

HANDOFF = str(Path(sys.executable).with_name("handoff"))
_URL = re.compile(r"serving MCP at (http://\S+/mcp)")


@dataclass(frozen=True)
class ServerDatabase:
    """The database a `handoff serve` subprocess uses: its URL plus the env that goes with it.

    On PostgreSQL `env` names the private schema of the test (`HANDOFF_DB__SCHEMA_NAME`); on SQLite
    it is empty and `sqlite_path` is the file.
    """

    backend: str
    url: str
    env: dict[str, str] = field(default_factory=dict)
    sqlite_path: Path | None = None


def server_env(database: str | ServerDatabase, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
    if isinstance(database, ServerDatabase):
        env["HANDOFF_DATABASE_URL"] = database.url
        env.update(database.env)
    else:
        env["HANDOFF_DATABASE_URL"] = database
    env["HANDOFF_LOG_LEVEL"] = "WARNING"
    env.update(extra)
    return env


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[str]
    stderr_lines: list[str]

    @property
    def base(self) -> str:
        return self.url.removesuffix("/mcp")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or power cut."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@contextmanager
def http_server(
    database_url: str | ServerDatabase,
    *,
    timeout: float = 30.0,
    launcher: tuple[str, ...] = (),
    **extra_env: str,
) -> Iterator[RunningServer]:
    """Run `handoff serve --transport http --port 0` (behind `launcher`, e.g. prlimit) and yield once
    it prints its URL."""
    process = subprocess.Popen(
        [*launcher, HANDOFF, "serve", "--transport", "http", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env(database_url, **extra_env),
    )
    stderr_lines: list[str] = []
    drains = [threading.Thread(target=_drain, args=(process.stderr, stderr_lines), daemon=True)]
    drains[0].start()
    url = None
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while url is None:
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            process.wait(timeout=5)
            drains[0].join(timeout=5)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
            raise RuntimeError("handoff serve did not start:\n" + "".join(stderr_lines[-30:]))
        line = process.stdout.readline()
        if match := _URL.search(line):
            url = match.group(1)
    drains.append(threading.Thread(target=_drain, args=(process.stdout, []), daemon=True))
    drains[1].start()
    server = RunningServer(url=url, process=process, stderr_lines=stderr_lines)
    try:
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for drain in drains:
            drain.join(timeout=5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def stdio_params(database_url: str | ServerDatabase, **extra_env: str) -> StdioServerParameters:
    """What a desktop client's config says: command + args (+ env)."""
    return StdioServerParameters(
        command=HANDOFF, args=["serve", "--transport", "stdio"], env=server_env(database_url, **extra_env)
    )


def _drain(stream: object, sink: list[str]) -> None:
    sink.extend(stream)  # type: ignore[call-overload]  # blocks line by line until the pipe closes
