"""Shared fixtures: a real SQLite file per test, the container, and an in-memory MCP client."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client

from handoff.config import Settings
from handoff.container import Container
from handoff.logs import configure_logging
from handoff.mcp.server import build_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def _logging() -> None:
    configure_logging("WARNING")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'handoff.db'}")  # type: ignore[arg-type]


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


POSTGRES_URL = os.environ.get("HANDOFF_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("HANDOFF_TEST_REDIS_URL")
