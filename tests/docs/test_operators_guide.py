"""Every example in docs/operators.md, run for real: deployment, backup and restore, upgrades, troubleshooting.

How the examples are marked and run: tests/docs/guide_harness.py.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.conftest import REDIS_URL
from tests.docs.guide_harness import (
    EXAMPLES,
    HANDOFF,
    OPERATORS_GUIDE,
    Background,
    Example,
    Workspace,
    call,
    example_params,
    need_redis,
    need_tool,
    redis_prefix,
    run_example,
    runs,
    serve_env,
    setting_field,
)

URL_LINE = re.compile(r"serving MCP at (http://\S+/mcp)")

# -- the database and sessions the examples work on ------------------------------------------------


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


# -- deployment ------------------------------------------------------------------------


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
    assert loaded["HANDOFF_AUTH__MODE"] == "tokens", "a replica bound to 0.0.0.0 refuses to start without auth"


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


@runs("token-create", "sqlite", "postgres")
def _token_create(ex: Example, ws: Workspace) -> None:
    ws.migrate()
    run = ws.sh(ex.code)
    assert run.returncode == 0, run.output
    created = json.loads(run.stdout)
    assert sorted(created) == ["agent", "id", "token"]
    assert created["agent"] == "claude-code"
    assert created["token"].startswith("hnd_")
    listed = ws.handoff("tokens", "list", "--json")
    assert listed.returncode == 0, listed.output
    assert created["token"] not in listed.stdout
    assert [t["id"] for t in json.loads(listed.stdout)] == [created["id"]]


@runs("replica-start", "sqlite", "postgres")
def _replica_start(ex: Example, ws: Workspace) -> None:
    """Two replicas started by the example share the database and its tokens; an allowed Host is accepted."""
    ws.migrate()
    created = ws.handoff("tokens", "create", "--agent", "a", "--json")
    assert created.returncode == 0, created.output
    bearer = {"Authorization": "Bearer " + json.loads(created.stdout)["token"]}
    extra = serve_env(
        HANDOFF_HTTP__ALLOWED_HOSTS='["handoff.example.com"]',
        HANDOFF_DB__AUTO_MIGRATE="false",
        HANDOFF_AUTH__MODE="tokens",
    )
    if REDIS_URL:
        prefix = ws.stack.enter_context(redis_prefix(REDIS_URL))
        extra |= {"HANDOFF_REDIS_URL": REDIS_URL, "HANDOFF_CACHE__KEY_PREFIX": prefix}
    replicas = [Background(ws, ex.code, **extra) for _ in range(2)]
    try:
        urls = [replica.wait_for(URL_LINE)[1] for replica in replicas]

        async def check() -> None:
            with anyio.fail_after(60):
                async with authorized(urls[0], bearer) as first:
                    await call(first, "register_session", session_key="via-replica-1", source_agent="a")
                    await call(
                        first, "update_context", session_key="via-replica-1", context_type="message", content="hi"
                    )
                async with authorized(urls[1], bearer) as second:
                    page = await call(second, "get_context", session_key="via-replica-1")
                    assert [e["content"] for e in page["entries"]] == ["hi"]
                async with httpx.AsyncClient(timeout=10) as http:
                    for url in urls:
                        ready = await http.get(url.removesuffix("/mcp") + "/readyz")
                        assert ready.status_code == 200, ready.text
                        backends = {c["name"]: c["backend"] for c in ready.json()["checks"]}
                        assert backends["cache"] == ("redis" if REDIS_URL else "memory")
                    assert (await http.post(urls[0], content="{}")).status_code == 401, "no token, yet served"
                    named = await http.post(
                        urls[1],
                        headers={"Host": "handoff.example.com", "Content-Type": "application/json", **bearer},
                        content="{}",
                    )
                    assert named.status_code != 421, "an allowed host name was refused"

        anyio.run(check)
    finally:
        codes = [replica.stop() for replica in replicas]
    assert codes == [0, 0], f"replicas did not stop cleanly on SIGTERM: {codes}"


@asynccontextmanager
async def authorized(url: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    """The SDK client, sending the token on every request."""
    http = create_mcp_http_client(headers=headers)
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        yield client


# -- backup and restore ------------------------------------------------------------------


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


# -- upgrading and troubleshooting ---------------------------------------------------------


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


# -- the test --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "backend"), example_params(OPERATORS_GUIDE))
def test_example(name: str, backend: str, tmp_path: Path) -> None:
    run_example(name, backend, tmp_path)
