"""Shared fixtures: a real database per test (SQLite file or PostgreSQL schema), the container, an
in-memory MCP client, and `server_db` for tests that start `handoff serve` subprocesses."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client

from handoff.config import Settings
from handoff.container import Container
from handoff.logs import configure_logging
from handoff.mcp.server import build_server
from tests.e2e.servers import ServerDatabase

# PostgreSQL and Redis run when configured, or when they answer at their usual local address, so the
# README's plain `pytest` on a machine with both runs the whole suite. The summary says which ran.
LOCAL_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"


def _postgres_answers(url: str) -> bool:
    import asyncio

    import asyncpg

    async def connect() -> None:
        conn = await asyncpg.connect(url, timeout=2)
        await conn.close()

    try:
        asyncio.run(connect())
    except Exception:  # refused, no such database, password required: not usable without settings
        return False
    return True


def _redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


POSTGRES_URL = os.environ.get("HANDOFF_TEST_POSTGRES_URL") or (
    LOCAL_POSTGRES_URL if _postgres_answers(LOCAL_POSTGRES_URL) else None
)
REDIS_URL = os.environ.get("HANDOFF_TEST_REDIS_URL") or (LOCAL_REDIS_URL if _redis_answers(LOCAL_REDIS_URL) else None)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def _logging() -> None:
    configure_logging("WARNING")


BACKENDS = ["sqlite", "postgres"]


def require_backend(name: str) -> str:
    """`name`, or skip (fail in CI) when it is PostgreSQL and no test database is configured."""
    if name == "postgres" and not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("HANDOFF_TEST_POSTGRES_URL is not set in CI")
        pytest.skip(f"no PostgreSQL at {LOCAL_POSTGRES_URL}; set HANDOFF_TEST_POSTGRES_URL to run against one")
    return name


_BACKEND_OUTCOMES: dict[str, dict[str, int]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count outcomes per database backend, for the summary line."""
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    ids = set(re.split(r"[\[\]-]", report.nodeid.rpartition("[")[2])) if "[" in report.nodeid else set()
    backend = next((name for name in BACKENDS if name in ids), None)
    if backend is not None:
        counts = _BACKEND_OUTCOMES.setdefault(backend, {})
        counts[report.outcome] = counts.get(report.outcome, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    def describe(name: str, target: str | None) -> str:
        counts = _BACKEND_OUTCOMES.get(name, {})
        ran = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no tests"
        return f"{name}: {ran}" + (f" ({target})" if target else "")

    postgres = _redact_password(POSTGRES_URL) if POSTGRES_URL else "not available: tests skipped"
    terminalreporter.write_sep("-", "backends")
    terminalreporter.write_line(describe("sqlite", None))
    terminalreporter.write_line(describe("postgres", postgres))
    terminalreporter.write_line(f"redis: {REDIS_URL or 'not available: Redis tests skipped'}")


def _redact_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every test built on `settings` or `server_db` runs on both backends (PostgreSQL when CI provides one).

    A test narrows it with `@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)`.
    """
    return require_backend(str(request.param))


@pytest.fixture
def settings(backend: str, tmp_path: Path) -> Iterator[Settings]:
    if backend == "sqlite":
        yield Settings(database_url=f"sqlite:///{tmp_path / 'handoff.db'}")  # type: ignore[arg-type]
        return
    assert POSTGRES_URL is not None
    # A private schema per test: as isolated as a fresh database, and far cheaper to create.
    schema = fresh_schema_name()
    built = Settings(database_url=POSTGRES_URL)  # type: ignore[arg-type]
    built.db.schema_name = schema
    yield built
    drop_postgres_schema(POSTGRES_URL, schema)


def fresh_schema_name() -> str:
    return f"handoff_t_{uuid.uuid4().hex[:12]}"


@contextmanager
def server_database(backend: str, directory: Path) -> Iterator[ServerDatabase]:
    """A fresh database for `handoff serve` subprocesses: a SQLite file in `directory`, or a private
    PostgreSQL schema (dropped afterwards)."""
    if backend == "sqlite":
        path = directory / "handoff.db"
        yield ServerDatabase(backend, f"sqlite:///{path}", sqlite_path=path)
        return
    assert POSTGRES_URL is not None
    schema = fresh_schema_name()
    try:
        yield ServerDatabase(backend, POSTGRES_URL, {"HANDOFF_DB__SCHEMA_NAME": schema})
    finally:
        drop_postgres_schema(POSTGRES_URL, schema)


@pytest.fixture
def server_db(backend: str, tmp_path: Path) -> Iterator[ServerDatabase]:
    """The database for the subprocess tests, on each backend like `settings`."""
    with server_database(backend, tmp_path) as database:
        yield database


def settings_for(database: ServerDatabase) -> Settings:
    """In-process Settings pointing at the same database as a subprocess started on `database`."""
    built = Settings(database_url=database.url)  # type: ignore[arg-type]
    built.db.schema_name = database.env.get("HANDOFF_DB__SCHEMA_NAME")
    return built


def drop_postgres_schema(url: str, schema: str) -> None:
    async def drop() -> None:
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    anyio.run(drop)


@pytest.fixture
async def container(settings: Settings) -> AsyncIterator[Container]:
    async with Container.build(settings) as built:
        yield built


@pytest.fixture
async def client(container: Container) -> AsyncIterator[Client]:
    async with Client(build_server(container)) as connected:
        yield connected


def structured(result: Any) -> dict[str, Any]:
    """The structured output of a successful tool call (fails the test on an error result)."""
    assert not result.is_error, result.content[0].text if result.content else result
    assert result.structured_content is not None
    return dict(result.structured_content)


def tool_error(result: Any) -> dict[str, Any]:
    """The {code, message, details} of a refused tool call."""
    assert result.is_error, f"expected an error, got {result.structured_content}"
    return dict(json.loads(result.content[0].text)["error"])
