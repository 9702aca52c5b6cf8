"""What the guide tests share: reading docs/operators.md and docs/agents.md, and running their examples.

How the guides mark their fenced blocks (the marker is the last non-blank line before the opening
fence; a block without one fails `test_every_fenced_block_is_marked` in test_guides.py, so nothing
goes unchecked):

    <!-- example: NAME -->     executed by the runner registered with `@runs(NAME)` (sh, python, json);
                               the runners live in test_operators_guide.py and test_agents_guide.py
    <!-- output: NAME -->      what example NAME prints (text, json): each non-blank line must match a
                               line of its stdout+stderr, in order; `…` stands for any text
    <!-- not-run: REASON -->   shown only, e.g. a load-balancer config; the reason is required

How examples run:
- `sh` with `bash -e -o pipefail` in a fresh directory, `python` as a script file there with this
  venv's interpreter; `json` is parsed and then used for what it is (tool arguments sent to a
  server, a client config started, a hook command run).
- Environment: none of the test run's own `HANDOFF_*`; HOME is a fresh directory; PATH starts with
  this venv's bin; HANDOFF_DATABASE_URL is the SQLite file at handoff's default place under that
  HOME (`~/.local/share/handoff/handoff.db`), or a PostgreSQL database created for the example;
  HANDOFF_URL is the MCP URL of a real `handoff serve` when the example talks to a server. Servers
  that examples start themselves get HANDOFF_HTTP__HOST=127.0.0.1 and HANDOFF_HTTP__PORT=0.
- The only substitutions: a client config's command path becomes this venv's `handoff` and its env
  the test database; `8765` in `busy-port` becomes a port this test holds open.
- PostgreSQL examples run when HANDOFF_TEST_POSTGRES_URL is set (skipped otherwise, failed in CI),
  each in a database created for it and dropped afterwards; Redis examples when
  HANDOFF_TEST_REDIS_URL is set, under a key prefix of their own.
- Waits are bounded and wait for the event itself: subprocess timeouts, deadlines on reading a
  background process's output lines, and for the detached worker a Claude Code hook starts, a pidfd
  (Linux) on that worker found through /proc.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
from mcp.client import Client
from pydantic import BaseModel

from handoff.config import Settings
from tests.conftest import POSTGRES_URL, REDIS_URL, require_backend, structured
from tests.e2e.servers import RunningServer, ServerDatabase, http_server

ROOT = Path(__file__).resolve().parents[2]
OPERATORS_GUIDE = ROOT / "docs" / "operators.md"
AGENTS_GUIDE = ROOT / "docs" / "agents.md"
GUIDES = (OPERATORS_GUIDE, AGENTS_GUIDE)
BIN = Path(sys.executable).parent
HANDOFF = str(BIN / "handoff")

# -- reading the guides ---------------------------------------------------------------------------

_FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)\s*$")
_MARKER = re.compile(r"^<!--\s*(example|output|not-run):\s*(.*?)\s*-->$")
EXAMPLE_LANGUAGES = {"sh", "python", "json"}
OUTPUT_LANGUAGES = {"text", "json"}


@dataclass(frozen=True)
class Block:
    guide: str
    line: int
    info: str
    body: str
    kind: str | None  # example | output | not-run | None (unmarked)
    label: str  # the example's name, or the not-run reason

    @property
    def where(self) -> str:
        return f"{self.guide}:{self.line}"


def read_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info, start = match[1], match[2], i
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        before = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.match(before)
        found.append(
            Block(
                guide=path.name,
                line=start + 1,
                info=info,
                body="\n".join(body) + "\n",
                kind=marker[1] if marker else None,
                label=marker[2] if marker else "",
            )
        )
    return found


BLOCKS = [block for guide in GUIDES for block in read_blocks(guide)]
EXAMPLES = {b.label: b for b in BLOCKS if b.kind == "example"}
OUTPUTS: dict[str, list[Block]] = {}
for _block in BLOCKS:
    if _block.kind == "output":
        OUTPUTS.setdefault(_block.label, []).append(_block)


def match_output(expected: str, actual: str) -> None:
    """Each non-blank expected line matches a whole actual line, in order; `…` is any text."""
    lines = [line.rstrip() for line in actual.splitlines()]
    position = 0
    for wanted in expected.splitlines():
        if not wanted.strip():
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in wanted.rstrip().split("…")))
        while position < len(lines) and not pattern.fullmatch(lines[position]):
            position += 1
        assert position < len(lines), f"expected output line {wanted!r} not found (in order) in:\n{actual}"
        position += 1


# -- settings named by the guides -------------------------------------------------------------------


def setting_field(variable: str) -> Any:
    """The pydantic field an environment variable sets, or an assertion naming the bad part."""
    parts = variable.removeprefix("HANDOFF_").lower().split("__")
    model: type[BaseModel] = Settings
    for index, part in enumerate(parts):
        assert part in model.model_fields, f"{variable}: no setting {part!r} in {model.__name__}"
        info = model.model_fields[part]
        if index == len(parts) - 1:
            return info
        annotation = info.annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel), f"{variable}: {part} is no group"
        model = annotation
    raise AssertionError(variable)


# -- running things ---------------------------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Example:
    """One example block as its runner sees it, with the output blocks that belong to it."""

    name: str
    block: Block
    checked_outputs: int = 0

    @property
    def code(self) -> str:
        return self.block.body

    def check_output(self, run: Run) -> None:
        outputs = OUTPUTS.get(self.name, [])
        assert outputs, f"{self.name} has no output block to check"
        for output in outputs:
            match_output(output.body, run.output)
        self.checked_outputs += 1


@dataclass
class Workspace:
    backend: str
    root: Path
    home: Path
    database_url: str
    sqlite_path: Path | None
    stack: contextlib.ExitStack
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def database(self) -> ServerDatabase:
        return ServerDatabase(self.backend, self.database_url, sqlite_path=self.sqlite_path)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_") and k != "XDG_DATA_HOME"}
        env["HOME"] = str(self.home)
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env["HANDOFF_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        env.update(extra)
        return env

    def sh(self, code: str, *, timeout: float = 120, **extra: str) -> Run:
        return self._run(["bash", "-e", "-o", "pipefail", "-c", code], timeout, extra)

    def python(self, code: str, *args: str, timeout: float = 120, **extra: str) -> Run:
        script = self.root / f"example_{uuid.uuid4().hex[:8]}.py"
        script.write_text(code)
        return self._run([sys.executable, str(script), *args], timeout, extra)

    def handoff(self, *args: str, **extra: str) -> Run:
        run = self._run([HANDOFF, *args], 120, extra)
        assert run.returncode == 0, run.output
        return run

    def _run(self, argv: list[str], timeout: float, extra: dict[str, str]) -> Run:
        done = subprocess.run(
            argv, cwd=self.root, env=self.env(**extra), capture_output=True, text=True, timeout=timeout, check=False
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def server(self, **extra_env: str) -> contextlib.AbstractContextManager[RunningServer]:
        return http_server(self.database, **extra_env)

    def migrate(self) -> None:
        self.handoff("migrate")

    def postgres_database(self) -> str:
        return self.stack.enter_context(postgres_database())


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A database of its own on the test PostgreSQL server: created here, dropped afterwards."""
    assert POSTGRES_URL is not None
    admin = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"handoff_docs_{uuid.uuid4().hex[:12]}"

    async def execute(statement: str) -> None:
        import asyncpg

        with anyio.fail_after(30):
            connection = await asyncpg.connect(admin)
            try:
                await connection.execute(statement)
            finally:
                await connection.close()

    anyio.run(execute, f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(admin)._replace(path=f"/{name}").geturl()
    finally:
        anyio.run(execute, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def workspace(backend: str, tmp_path: Path) -> Iterator[Workspace]:
    root, home = tmp_path / "work", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            path = home / ".local" / "share" / "handoff" / "handoff.db"
            yield Workspace(backend, root, home, f"sqlite:///{path}", path, stack)
        else:
            yield Workspace(backend, root, home, stack.enter_context(postgres_database()), None, stack)


class Background:
    """A long-running example (a server, a watcher): its stdout read line by line with deadlines."""

    def __init__(self, ws: Workspace, code: str, **extra: str) -> None:
        self._stderr = (ws.root / f"stderr_{uuid.uuid4().hex[:8]}.log").open("w+")
        self.process = subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", code],
            cwd=ws.root,
            env=ws.env(**extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,  # its own process group: stopped together below
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern.pattern!r} within {timeout}s:\n{self.stderr()}"
                ) from None
            if line is None:
                raise AssertionError(
                    f"exited ({self.process.wait(5)}) before printing {pattern.pattern!r}:\n{self.stderr()}"
                )
            if match := pattern.search(line):
                return match

    def stderr(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()[-4000:]

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM to the example's process group; SIGKILL if it has not ended by the deadline."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()
        return self.process.returncode


def serve_env(**extra: str) -> dict[str, str]:
    """What an example that starts a server gets: loopback, a free port."""
    return {"HANDOFF_HTTP__HOST": "127.0.0.1", "HANDOFF_HTTP__PORT": "0", "HANDOFF_LOG_LEVEL": "WARNING", **extra}


def need_tool(name: str) -> None:
    if shutil.which(name) is None:
        if os.environ.get("CI"):
            pytest.fail(f"`{name}` is not installed")
        pytest.skip(f"`{name}` is not installed")


def need_redis() -> str:
    if not REDIS_URL:
        if os.environ.get("CI"):
            pytest.fail("HANDOFF_TEST_REDIS_URL is not set in CI")
        pytest.skip("set HANDOFF_TEST_REDIS_URL to run the Redis examples")
    return REDIS_URL


@contextlib.contextmanager
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of our own on the shared test Redis; its keys are deleted afterwards."""
    import redis

    prefix = f"handoff-docs-{uuid.uuid4().hex[:8]}:"
    try:
        yield prefix
    finally:
        store = redis.Redis.from_url(redis_url)
        try:
            for key in store.scan_iter(f"{prefix}*"):
                store.delete(key)
        finally:
            store.close()


def call(client: Client, tool: str, **arguments: Any) -> Any:
    """Awaitable shorthand for a tool call that must succeed (its structured result)."""

    async def go() -> dict[str, Any]:
        return structured(await client.call_tool(tool, arguments))

    return go()


# -- the runners: one registry for both guides ---------------------------------------------------------


@dataclass(frozen=True)
class Runner:
    run: Callable[[Example, Workspace], None]
    backends: tuple[str, ...]


RUNNERS: dict[str, Runner] = {}  # example name -> runner, filled by @runs in the test_*_guide.py modules


def runs(name: str, *backends: str) -> Callable[[Callable[[Example, Workspace], None]], Callable[..., None]]:
    def register(fn: Callable[[Example, Workspace], None]) -> Callable[..., None]:
        assert name not in RUNNERS, name
        RUNNERS[name] = Runner(fn, backends or ("sqlite",))
        return fn

    return register


def example_params(guide: Path) -> list[Any]:
    """One test per example of `guide` and backend its runner names (the runners must be registered first)."""
    return [
        pytest.param(name, backend, id=f"{name}[{backend}]", marks=pytest.mark.slow)
        for name in sorted(EXAMPLES)
        if EXAMPLES[name].guide == guide.name
        for backend in (RUNNERS[name].backends if name in RUNNERS else ("sqlite",))
    ]


def run_example(name: str, backend: str, tmp_path: Path) -> None:
    """Run example `name` with its runner in a fresh workspace; its output blocks must have been compared."""
    assert name in RUNNERS, f"no runner for example {name!r} ({EXAMPLES[name].where})"
    require_backend(backend)
    example = Example(name, EXAMPLES[name])
    with workspace(backend, tmp_path) as ws:
        RUNNERS[name].run(example, ws)
    if name in OUTPUTS:
        assert example.checked_outputs, f"{name}: its output block was never compared"
