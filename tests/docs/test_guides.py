"""Every example in docs/operators.md and docs/agents.md, run for real.

How the guides mark their fenced blocks (the marker is the last non-blank line before the opening
fence; a block without one fails `test_every_fenced_block_is_marked`, so nothing goes unchecked):

    <!-- example: NAME -->     executed by the runner registered below under NAME (sh, python, json)
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
import json
import os
import queue
import re
import select
import shutil
import signal
import socket
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
import httpx
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from pydantic import BaseModel, SecretStr

from handoff.config import Settings
from tests.conftest import POSTGRES_URL, REDIS_URL, require_backend, structured, tool_error
from tests.e2e.servers import RunningServer, ServerDatabase, http_server

ROOT = Path(__file__).resolve().parents[2]
GUIDES = (ROOT / "docs" / "operators.md", ROOT / "docs" / "agents.md")
CASES = ROOT / "bench" / "handoff_quality" / "cases"
BIN = Path(sys.executable).parent
HANDOFF = str(BIN / "handoff")
URL_LINE = re.compile(r"serving MCP at (http://\S+/mcp)")
EXAMPLE_PLACEHOLDER_VARIABLES = {"HANDOFF_URL"}  # read by the examples, not by handoff

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


def previous_revision() -> str:
    """The schema revision before the newest one, to play a database an upgrade has to catch up."""
    from alembic.script import ScriptDirectory

    from handoff.storage import migrate

    scripts = ScriptDirectory(str(Path(migrate.__file__).parent / "migrations"))
    down = scripts.get_revision(migrate.head_revision()).down_revision
    assert isinstance(down, str), "these examples need at least two migrations"
    return down


def migrate_to(database_url: str, revision: str) -> None:
    from handoff.config import DatabaseSettings, normalise_database_url
    from handoff.storage.engine import create_engine
    from handoff.storage.migrate import upgrade

    async def go() -> None:
        engine = create_engine(normalise_database_url(database_url), DatabaseSettings())
        try:
            with anyio.fail_after(60):
                await upgrade(engine, revision)
        finally:
            await engine.dispose()

    anyio.run(go)


def session_keys(ws: Workspace, **extra: str) -> set[str]:
    listed = ws.handoff("sessions", "list", "--json", **extra)
    return {s["session_key"] for s in json.loads(listed.stdout)}


def add_session(url: str, key: str, *contents: str) -> None:
    async def go() -> None:
        with anyio.fail_after(60):
            async with Client(url) as client:
                await call(client, "register_session", session_key=key, source_agent="ops")
                for content in contents:
                    await call(client, "update_context", session_key=key, context_type="message", content=content)

    anyio.run(go)


def brief_sections(brief: str) -> dict[str, str]:
    sections: dict[str, str] = {}
    title = ""
    for line in brief.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            sections[title] = ""
        elif title:
            sections[title] += line + "\n"
    return sections


# -- the runners ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Runner:
    run: Callable[[Example, Workspace], None]
    backends: tuple[str, ...]


RUNNERS: dict[str, Runner] = {}


def runs(name: str, *backends: str) -> Callable[[Callable[[Example, Workspace], None]], Callable[..., None]]:
    def register(fn: Callable[[Example, Workspace], None]) -> Callable[..., None]:
        assert name not in RUNNERS, name
        RUNNERS[name] = Runner(fn, backends or ("sqlite",))
        return fn

    return register


# operators.md: deployment ------------------------------------------------------------------------


def check_env_file(ex: Example, ws: Workspace) -> dict[str, Any]:
    """Source the file as a shell would, load Settings from the result: every line must take effect."""
    variables = [line.split("=", 1)[0] for line in ex.code.splitlines() if line and not line.startswith("#")]
    assert variables and all(v.startswith("HANDOFF_") for v in variables), variables
    for variable in variables:
        setting_field(variable)
    (ws.root / "handoff.env").write_text(ex.code)
    probe = (
        "import json, os\n"
        "from pydantic import SecretStr\n"
        "from handoff.config import Settings\n"
        "settings = Settings()\n"
        f"variables = {variables!r}\n"
        "def value(variable):\n"
        "    node = settings\n"
        "    for part in variable.removeprefix('HANDOFF_').lower().split('__'):\n"
        "        node = getattr(node, part)\n"
        "    return node.get_secret_value() if isinstance(node, SecretStr) else node\n"
        "print(json.dumps({v: [os.environ[v], value(v)] for v in variables}))\n"
    )
    (ws.root / "probe.py").write_text(probe)
    run = ws.sh("set -a\n. ./handoff.env\nset +a\npython probe.py\n")
    assert run.returncode == 0, run.output
    loaded = json.loads(run.stdout)
    for variable, (raw, value) in loaded.items():
        expected: Any = raw
        if isinstance(value, bool):
            expected = raw.lower() in {"1", "true", "yes", "on"}
        elif isinstance(value, int | float | list):
            expected = json.loads(raw)
        assert value == expected, f"{variable}={raw!r} loaded as {value!r}"
    return {variable: value for variable, (_, value) in loaded.items()}


@runs("replica-env")
def _replica_env(ex: Example, ws: Workspace) -> None:
    loaded = check_env_file(ex, ws)
    assert loaded["HANDOFF_DATABASE_URL"].startswith("postgresql://")
    assert loaded["HANDOFF_HTTP__ALLOWED_HOSTS"] == ["handoff.example.com"]
    assert loaded["HANDOFF_DB__AUTO_MIGRATE"] is False


@runs("tuning-env")
def _tuning_env(ex: Example, ws: Workspace) -> None:
    loaded = check_env_file(ex, ws)
    # The guide's arithmetic: four replicas × (pool + overflow) = 80 connections.
    assert 4 * (loaded["HANDOFF_DB__POOL_SIZE"] + loaded["HANDOFF_DB__MAX_OVERFLOW"]) == 80


@runs("first-migrate", "sqlite", "postgres")
def _first_migrate(ex: Example, ws: Workspace) -> None:
    from handoff.storage.revision import SCHEMA_HEAD

    run = ws.sh(ex.code)
    assert run.returncode == 0, run.output
    ex.check_output(run)
    assert f"schema empty -> {SCHEMA_HEAD}" in run.stdout


@runs("replica-start", "sqlite", "postgres")
def _replica_start(ex: Example, ws: Workspace) -> None:
    """Two replicas started by the example share the database; an allowed Host is accepted."""
    ws.migrate()
    extra = serve_env(HANDOFF_HTTP__ALLOWED_HOSTS='["handoff.example.com"]', HANDOFF_DB__AUTO_MIGRATE="false")
    if REDIS_URL:
        prefix = ws.stack.enter_context(redis_prefix(REDIS_URL))
        extra |= {"HANDOFF_REDIS_URL": REDIS_URL, "HANDOFF_CACHE__KEY_PREFIX": prefix}
    replicas = [Background(ws, ex.code, **extra) for _ in range(2)]
    try:
        urls = [replica.wait_for(URL_LINE)[1] for replica in replicas]

        async def check() -> None:
            with anyio.fail_after(60):
                async with Client(urls[0]) as first:
                    await call(first, "register_session", session_key="via-replica-1", source_agent="a")
                    await call(
                        first, "update_context", session_key="via-replica-1", context_type="message", content="hi"
                    )
                async with Client(urls[1]) as second:
                    page = await call(second, "get_context", session_key="via-replica-1")
                    assert [e["content"] for e in page["entries"]] == ["hi"]
                async with httpx.AsyncClient(timeout=10) as http:
                    for url in urls:
                        ready = await http.get(url.removesuffix("/mcp") + "/readyz")
                        assert ready.status_code == 200, ready.text
                        backends = {c["name"]: c["backend"] for c in ready.json()["checks"]}
                        assert backends["cache"] == ("redis" if REDIS_URL else "memory")
                    named = await http.post(
                        urls[1],
                        headers={"Host": "handoff.example.com", "Content-Type": "application/json"},
                        content="{}",
                    )
                    assert named.status_code != 421, "an allowed host name was refused"

        anyio.run(check)
    finally:
        codes = [replica.stop() for replica in replicas]
    assert codes == [0, 0], f"replicas did not stop cleanly on SIGTERM: {codes}"


# operators.md: backup and restore ------------------------------------------------------------------


def latest_backup(ws: Workspace) -> Path:
    backups = sorted((ws.home / "backups").glob("handoff-*.db"))
    assert backups, "the example made no backup"
    return backups[-1]


def keys_in_sqlite_file(ws: Workspace, path: Path) -> set[str]:
    return session_keys(ws, HANDOFF_DATABASE_URL=f"sqlite:///{path}")


@runs("sqlite-backup")
def _sqlite_backup(ex: Example, ws: Workspace) -> None:
    need_tool("sqlite3")
    with ws.server() as server:
        add_session(server.url, "before-backup", "written while the server runs")
        run = ws.sh(ex.code)  # online: the server keeps the file open
        assert run.returncode == 0, run.output
    assert "before-backup" in keys_in_sqlite_file(ws, latest_backup(ws))


@runs("sqlite-backup-python")
def _sqlite_backup_python(ex: Example, ws: Workspace) -> None:
    with ws.server() as server:
        add_session(server.url, "before-backup", "written while the server runs")
        run = ws.python(ex.code)
        assert run.returncode == 0, run.output
    assert f"backed up to {latest_backup(ws)}" in run.stdout
    assert "before-backup" in keys_in_sqlite_file(ws, latest_backup(ws))


@runs("sqlite-restore")
def _sqlite_restore(ex: Example, ws: Workspace) -> None:
    """Back up with the guide's example, write more, crash the server (its WAL stays), restore."""
    need_tool("sqlite3")
    with ws.server() as server:
        add_session(server.url, "before-backup", "kept")
        backup = ws.sh(EXAMPLES["sqlite-backup"].body)
        assert backup.returncode == 0, backup.output
        add_session(server.url, "after-backup", "lost by the restore")
        server.kill()  # SIGKILL: the WAL with after-backup is left behind
    assert ws.sqlite_path is not None and ws.sqlite_path.with_name("handoff.db-wal").exists()
    run = ws.sh(ex.code)
    assert run.returncode == 0, run.output
    assert "ok" in run.stdout.splitlines(), run.output
    assert session_keys(ws) == {"before-backup"}


@runs("pg-backup", "postgres")
def _pg_backup(ex: Example, ws: Workspace) -> None:
    need_tool("pg_dump")
    need_tool("pg_restore")
    with ws.server() as server:
        add_session(server.url, "before-backup", "written while the replicas serve")
        run = ws.sh(ex.code)
        assert run.returncode == 0, run.output
    listing = subprocess.run(
        ["pg_restore", "--list", str(ws.root / "handoff.dump")], capture_output=True, text=True, timeout=60, check=True
    )
    assert "TABLE public sessions" in listing.stdout and "alembic_version" in listing.stdout


@runs("pg-restore", "postgres")
def _pg_restore(ex: Example, ws: Workspace) -> None:
    need_tool("pg_dump")
    need_tool("pg_restore")
    with ws.server() as server:
        add_session(server.url, "before-backup", "kept")
        backup = ws.sh(EXAMPLES["pg-backup"].body)
        assert backup.returncode == 0, backup.output
        add_session(server.url, "after-backup", "not in the dump")
    restore_url = ws.postgres_database()
    run = ws.sh(ex.code, RESTORE_URL=restore_url)
    assert run.returncode == 0, run.output
    listed = json.loads(run.stdout[run.stdout.index("[") :])
    assert {s["session_key"] for s in listed} == {"before-backup"}
    assert session_keys(ws) == {"before-backup", "after-backup"}  # the source is untouched


@runs("redis-flush")
def _redis_flush(ex: Example, ws: Workspace) -> None:
    import redis

    need_tool("redis-cli")
    redis_url = need_redis()
    prefix = ws.stack.enter_context(redis_prefix(redis_url))
    cache = {"HANDOFF_REDIS_URL": redis_url, "HANDOFF_CACHE__KEY_PREFIX": prefix}
    with ws.server(**cache) as server:

        async def fill() -> None:
            with anyio.fail_after(60):
                async with Client(server.url) as client:
                    await call(client, "register_session", session_key="cached", source_agent="a")
                    await call(client, "update_context", session_key="cached", context_type="message", content="x")
                    await call(client, "get_context", session_key="cached")
                    handoff = await call(client, "request_handoff", session_key="cached", target_agent="b")
                    await call(client, "get_handoff", handoff_id=handoff["handoff"]["handoff_id"])

        anyio.run(fill)
    store = redis.Redis.from_url(redis_url)
    try:
        assert list(store.scan_iter(f"{prefix}*")), "the server cached nothing in Redis"
        run = ws.sh(ex.code, **cache)
        assert run.returncode == 0, run.output
        assert not list(store.scan_iter(f"{prefix}*"))
    finally:
        store.close()


# operators.md: upgrading and troubleshooting ---------------------------------------------------------


@runs("upgrade", "sqlite", "postgres")
def _upgrade(ex: Example, ws: Workspace) -> None:
    from handoff.storage.revision import SCHEMA_HEAD

    old = previous_revision()
    migrate_to(ws.database_url, old)
    run = ws.sh(ex.code)
    assert run.returncode == 0, run.output
    ex.check_output(run)
    assert f"schema {old}, code expects {SCHEMA_HEAD}" in run.stdout
    assert f"schema {old} -> {SCHEMA_HEAD}" in run.stdout


@runs("doctor")
def _doctor(ex: Example, ws: Workspace) -> None:
    ws.migrate()
    run = ws.sh(ex.code)
    assert run.returncode == 0, run.output
    ex.check_output(run)
    assert json.loads(run.stdout)["ready"] is True


@runs("readyz")
def _readyz(ex: Example, ws: Workspace) -> None:
    need_tool("curl")
    with ws.server() as server:
        run = ws.sh(ex.code, HANDOFF_URL=server.url)
    assert run.returncode == 0, run.output
    ex.check_output(run)
    assert json.loads(run.stdout)["ready"] is True


@runs("doctor-db-down")
def _doctor_db_down(ex: Example, ws: Workspace) -> None:
    run = ws.sh(ex.code)
    assert run.returncode == 0, run.output
    ex.check_output(run)


@runs("schema-behind")
def _schema_behind(ex: Example, ws: Workspace) -> None:
    migrate_to(ws.database_url, previous_revision())
    run = ws.sh(ex.code, timeout=60, **serve_env())
    assert run.returncode == 1, run.output
    ex.check_output(run)


@runs("busy-port")
def _busy_port(ex: Example, ws: Workspace) -> None:
    assert "8765" in ex.code
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        run = ws.sh(ex.code.replace("8765", str(port)), timeout=60, HANDOFF_HTTP__HOST="127.0.0.1")
    assert run.returncode == 1, run.output
    ex.check_output(run)
    assert f"127.0.0.1:{port}:" in run.stderr


@runs("host-421")
def _host_421(ex: Example, ws: Workspace) -> None:
    need_tool("curl")
    with ws.server() as server:
        refused = ws.sh(ex.code, HANDOFF_URL=server.url)
    assert refused.returncode == 0, refused.output
    ex.check_output(refused)
    # The fix the guide gives: list the name in HANDOFF_HTTP__ALLOWED_HOSTS.
    with ws.server(HANDOFF_HTTP__ALLOWED_HOSTS='["handoff.example.com"]') as server:
        accepted = ws.sh(ex.code, HANDOFF_URL=server.url)
    assert accepted.returncode == 0 and accepted.stdout.strip() != "421", accepted.output


@runs("misdirected-stdio")
def _misdirected_stdio(ex: Example, ws: Workspace) -> None:
    run = ws.sh(ex.code, timeout=60, **serve_env())
    assert run.returncode == 1, run.output
    ex.check_output(run)


@runs("stdio-config")
def _stdio_config(ex: Example, ws: Workspace) -> None:
    entry = json.loads(ex.code)["mcpServers"]["handoff"]
    assert entry["args"] == ["stdio"] and Path(entry["command"]).name == "handoff"
    for variable in entry["env"]:
        setting_field(variable)
    params = StdioServerParameters(command=HANDOFF, args=entry["args"], env={"HANDOFF_DATABASE_URL": ws.database_url})

    async def use() -> None:
        with anyio.fail_after(60):
            async with Client(params) as client:
                await call(client, "register_session", session_key="over-stdio", source_agent="desktop")
                assert (await call(client, "get_session", session_key="over-stdio"))["session"]["owner_agent"] == (
                    "desktop"
                )

    anyio.run(use)


# agents.md ------------------------------------------------------------------------------------------


@runs("connect-stdio")
def _connect_stdio(ex: Example, ws: Workspace) -> None:
    run = ws.python(ex.code)
    assert run.returncode == 0, run.output
    tools = set(run.stdout.split())
    assert {"register_session", "update_context", "request_handoff", "get_context", "get_handoff"} <= tools


def send_flow(ws: Workspace, url: str) -> str:
    run = ws.python(EXAMPLES["flow-sender"].body, HANDOFF_URL=url)
    assert run.returncode == 0, run.output
    assert "You are about to hand session `fix-login-bug`" in run.stdout  # the prepare_handoff prompt
    handoff_id = run.stdout.split()[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", handoff_id), run.stdout[-500:]
    return handoff_id


@runs("flow-sender")
def _flow_sender(ex: Example, ws: Workspace) -> None:
    with ws.server() as server:
        handoff_id = send_flow(ws, server.url)

        async def read() -> dict[str, Any]:
            with anyio.fail_after(60):
                async with Client(server.url) as client:
                    return dict((await call(client, "get_handoff", handoff_id=handoff_id))["handoff"])

        handoff = anyio.run(read)
    sections = brief_sections(handoff["brief"])
    assert next(iter(sections)) == "Handoff note from the agent"
    assert "Log-in works for addresses containing +" in sections["Handoff note from the agent"]
    assert "Encoding + in the login form" in sections["Handoff note from the agent"]
    assert "tests/test_login.py::test_plus_in_email" in sections["Tests"]
    assert "do not change the users table" in sections["Constraints from the user"]
    assert "`app/auth.py`: edited" in sections["Files"]
    assert handoff["handoff_type"] == "full_handoff" and handoff["brief_tokens"] <= 1500


@runs("flow-receiver")
def _flow_receiver(ex: Example, ws: Workspace) -> None:
    with ws.server() as server:
        handoff_id = send_flow(ws, server.url)
        run = ws.python(ex.code, handoff_id, HANDOFF_URL=server.url)
    assert run.returncode == 0, run.output
    assert "# Handoff brief: session `fix-login-bug`, claude-code → codex" in run.stdout
    assert "get_context(session_key=" in run.stdout  # the instructions
    assert "read 4 entries, last #4" in run.stdout
    assert "wrote #5" in run.stdout


@runs("brief-inputs")
def _brief_inputs(ex: Example, ws: Workspace) -> None:
    calls = json.loads(ex.code)
    (key,) = {c["session_key"] for c in calls}
    with ws.server() as server:

        async def build() -> str:
            with anyio.fail_after(60):
                async with Client(server.url) as client:
                    await call(client, "register_session", session_key=key, source_agent="claude-code")
                    for arguments in calls:
                        await call(client, "update_context", **arguments)
                    result = await call(client, "request_handoff", session_key=key, target_agent="codex")
                    return str(result["handoff"]["brief"])

        sections = brief_sections(anyio.run(build))
    assert "FAILING `tests/test_checkout.py::test_large_cart_checkout`" in sections["Tests"]
    assert "Batch the price lookups in Cart.total()" in sections["Plan and to-do list"]
    assert "Add a test with 200 items" in sections["Plan and to-do list"]
    assert "price_service.get_many()" in sections["Findings and decisions"]
    assert "Raising the gateway timeout" in sections["Rejected or reverted"]
    assert "Keep the public API of cart.py unchanged." in sections["Constraints from the user"]
    assert "`shop/cart.py`: edited" in sections["Files"]


@runs("note")
def _note(ex: Example, ws: Workspace) -> None:
    note = json.loads(ex.code)
    with ws.server() as server:

        async def hand_off() -> dict[str, Any]:
            with anyio.fail_after(60):
                async with Client(server.url) as client:
                    await call(client, "register_session", session_key="checkout-timeout", source_agent="claude-code")
                    await call(
                        client, "update_context", session_key="checkout-timeout", context_type="message", content="go"
                    )
                    result = await call(
                        client, "request_handoff", session_key="checkout-timeout", target_agent="codex", note=note
                    )
                    return dict(result["handoff"])

        handoff = anyio.run(hand_off)
    assert handoff["note"] == note
    sections = brief_sections(handoff["brief"])
    assert next(iter(sections)) == "Handoff note from the agent"
    for value in note.values():
        for text in [value] if isinstance(value, str) else value:
            assert text in sections["Handoff note from the agent"], text


def claude_code_log(ws: Workspace, project: str = "-home-me-shop") -> tuple[Path, str]:
    source = CASES / "cc-volcano-dra-quota" / "source.jsonl"
    session_id = json.loads(source.read_text().splitlines()[0])["sessionId"]
    target = ws.home / ".claude" / "projects" / project / f"{session_id}.jsonl"
    target.parent.mkdir(parents=True)
    shutil.copy(source, target)
    return target, session_id


@runs("import-claude-code")
def _import_claude_code(ex: Example, ws: Workspace) -> None:
    _, session_id = claude_code_log(ws)
    first = ws.sh(ex.code)
    assert first.returncode == 0, first.output
    ex.check_output(first)
    result = json.loads(first.stdout)
    assert result["session_key"] == f"claude-code-{session_id}" and result["imported"] > 10
    again = json.loads(ws.sh(ex.code).stdout)
    assert again["imported"] == 0 and again["created"] is False


@runs("import-over-mcp")
def _import_over_mcp(ex: Example, ws: Workspace) -> None:
    shutil.copy(CASES / "aider-iot-pytorch" / "source.md", ws.root / ".aider.chat.history.md")
    with ws.server() as server:
        run = ws.sh(ex.code, HANDOFF_URL=server.url)
        assert run.returncode == 0, run.output
        result = json.loads(run.stdout)

        async def owner() -> str:
            with anyio.fail_after(60):
                async with Client(server.url) as client:
                    session = await call(client, "get_session", session_key="payments-refactor")
                    return str(session["session"]["owner_agent"])

        assert anyio.run(owner) == "aider"
    assert result["format"] == "aider" and result["session_key"] == "payments-refactor" and result["imported"] > 0


def detached_workers(home: Path) -> list[int]:
    """The `handoff hook … --wait` workers started for this test's HOME (read from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone already, or not ours to read
        if b"hook" in argv and b"--wait" in argv and f"HOME={home}".encode() in environ:
            found.append(int(proc.name))
    return found


def wait_for_exit(pid: int, timeout: float) -> None:
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # it has finished
    try:
        ready, _, _ = select.select([handle], [], [], timeout)
        assert ready, f"the hook's worker {pid} still runs after {timeout}s"
    finally:
        os.close(handle)


CLAUDE_CODE_HOOK_EVENTS = {
    "PreToolUse",
    "PostToolUse",
    "Notification",
    "UserPromptSubmit",
    "Stop",
    "SubagentStop",
    "PreCompact",
    "SessionStart",
    "SessionEnd",
}


@runs("claude-code-hooks")
def _claude_code_hooks(ex: Example, ws: Workspace) -> None:
    from handoff.container import Container

    hooks = json.loads(ex.code)["hooks"]
    assert set(hooks) <= CLAUDE_CODE_HOOK_EVENTS
    commands = {h["command"] for groups in hooks.values() for group in groups for h in group["hooks"]}
    assert commands == {"handoff hook claude-code"}
    transcript, session_id = claude_code_log(ws)
    payload = {"session_id": session_id, "transcript_path": str(transcript), "hook_event_name": "Stop"}
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", commands.pop()],
        input=json.dumps(payload),
        cwd=ws.root,
        env=ws.env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0 and time.monotonic() - started < 10, done.stderr

    async def entries() -> int:
        settings = Settings(database_url=SecretStr(ws.database_url))
        async with Container.build(settings) as container:
            return (await container.sessions.get(f"claude-code-{session_id}")).session.entry_count

    for pid in detached_workers(ws.home):  # the hook returned at once; its worker imports
        wait_for_exit(pid, timeout=60)
    assert anyio.run(entries) > 10


@runs("hook-by-hand")
def _hook_by_hand(ex: Example, ws: Workspace) -> None:
    claude_code_log(ws)
    run = ws.sh(ex.code)
    assert run.returncode == 0, run.output
    shown = json.loads(run.stdout)
    assert shown["session"]["session_key"] == "claude-code-manual-check"
    assert shown["session"]["entry_count"] > 10


@runs("watch-codex")
def _watch_codex(ex: Example, ws: Workspace) -> None:
    today = ws.sh("date +%Y/%m/%d").stdout.strip()
    lines = (CASES / "codex-wrapped-ghostty-font" / "source.jsonl").read_text().splitlines(keepends=True)
    rollout = ws.home / ".codex" / "sessions" / today / "rollout-2026-04-08T14-03-02-019d6d67.jsonl"
    rollout.parent.mkdir(parents=True)
    rollout.write_text("".join(lines[:30]))
    imported = re.compile(r": \+(\d+) -> my-task$")
    watcher = Background(ws, ex.code)
    try:
        watcher.wait_for(imported)
        with rollout.open("a") as handle:
            handle.write("".join(lines[30:]))
        watcher.wait_for(imported)  # it followed the file as it grew
    finally:
        watcher.stop()


@runs("error-forbidden")
def _error_forbidden(ex: Example, ws: Workspace) -> None:
    documented = json.loads(ex.code)["error"]
    with ws.server() as server:

        async def provoke() -> dict[str, Any]:
            with anyio.fail_after(60):
                async with Client(server.url) as client:
                    await call(client, "register_session", session_key="fix-login-bug", source_agent="claude-code")
                    await call(
                        client,
                        "request_handoff",
                        session_key="fix-login-bug",
                        target_agent="codex",
                        handoff_type="full_handoff",
                    )
                    refused = await client.call_tool(
                        "update_context",
                        {
                            "session_key": "fix-login-bug",
                            "context_type": "message",
                            "content": "one more thing",
                            "agent": "claude-code",
                        },
                    )
                    return tool_error(refused)

        assert anyio.run(provoke) == documented


# -- the tests --------------------------------------------------------------------------------------


def test_every_fenced_block_is_marked() -> None:
    problems = []
    for block in BLOCKS:
        if block.kind is None:
            problems.append(f"{block.where}: no <!-- example: NAME -->, <!-- output: NAME --> or <!-- not-run: … -->")
        elif block.kind == "example" and block.info not in EXAMPLE_LANGUAGES:
            problems.append(f"{block.where}: example {block.label!r} is {block.info!r}, not one of {EXAMPLE_LANGUAGES}")
        elif block.kind == "output" and block.info not in OUTPUT_LANGUAGES:
            problems.append(
                f"{block.where}: output of {block.label!r} is {block.info!r}, not one of {OUTPUT_LANGUAGES}"
            )
        elif block.kind == "output" and block.label not in EXAMPLES:
            problems.append(f"{block.where}: output of {block.label!r}, which is no example")
        elif block.kind == "not-run" and not block.label:
            problems.append(f"{block.where}: not-run needs a reason")
    names = [b.label for b in BLOCKS if b.kind == "example"]
    problems += [f"example name {name!r} is used twice" for name in sorted({n for n in names if names.count(n) > 1})]
    assert not problems, "\n".join(problems)


def test_every_example_has_a_runner_and_every_runner_an_example() -> None:
    assert EXAMPLES, "no examples found in the guides"
    assert sorted(set(EXAMPLES) - set(RUNNERS)) == [], "examples nobody runs"
    assert sorted(set(RUNNERS) - set(EXAMPLES)) == [], "runners for examples the guides no longer have"


def test_the_guides_name_only_real_settings() -> None:
    for guide in GUIDES:
        for variable in sorted(set(re.findall(r"\bHANDOFF_[A-Z0-9_]*[A-Z0-9]", guide.read_text()))):
            if variable not in EXAMPLE_PLACEHOLDER_VARIABLES:
                setting_field(variable)


def test_defaults_in_the_operators_tables_are_the_real_ones() -> None:
    checked = 0
    for line in GUIDES[0].read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.fullmatch(r"`HANDOFF_[A-Z0-9_]+`", cells[0]):
            continue
        variable, default = cells[0].strip("`"), cells[1]
        actual = setting_field(variable).get_default(call_default_factory=True)
        if default == "unset":
            assert actual is None, f"{variable}: the guide says unset, the default is {actual!r}"
        else:
            assert re.fullmatch(r"`[^`]+`", default), f"{variable}: write the default as a code span: {default!r}"
            assert json.loads(default.strip("`")) == actual, f"{variable}: guide {default}, config.py {actual!r}"
        checked += 1
    assert checked >= 30, f"only {checked} settings rows found in {GUIDES[0].name}"


def _example_params() -> list[Any]:
    return [
        pytest.param(name, backend, id=f"{name}[{backend}]", marks=pytest.mark.slow)
        for name in sorted(EXAMPLES)
        for backend in (RUNNERS[name].backends if name in RUNNERS else ("sqlite",))
    ]


@pytest.mark.parametrize(("name", "backend"), _example_params())
def test_example(name: str, backend: str, tmp_path: Path) -> None:
    assert name in RUNNERS, f"no runner for example {name!r} ({EXAMPLES[name].where})"
    require_backend(backend)
    example = Example(name, EXAMPLES[name])
    with workspace(backend, tmp_path) as ws:
        RUNNERS[name].run(example, ws)
    if name in OUTPUTS:
        assert example.checked_outputs, f"{name}: its output block was never compared"
