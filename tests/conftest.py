"""Shared fixtures: a real database per test (SQLite file or PostgreSQL schema), the container, an
in-memory MCP client, and `server_db` for tests that start `handoff serve` subprocesses."""

from __future__ import annotations

import json
import os
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

POSTGRES_URL = os.environ.get("HANDOFF_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("HANDOFF_TEST_REDIS_URL")


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
        pytest.skip("set HANDOFF_TEST_POSTGRES_URL to run against PostgreSQL")
    return name


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
