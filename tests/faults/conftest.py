"""Fixtures for the fault tests: a private PostgreSQL cluster and a private Redis per test."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import pytest

from tests.e2e.servers import RunningServer, http_server
from tests.faults.services import PrivatePostgres, PrivateRedis, missing_postgres, private_postgres, private_redis


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    """A cluster of our own: the tests stop and crash it, which they must never do to the shared one."""
    if reason := missing_postgres():
        _unavailable(reason)
    with private_postgres() as cluster:
        yield cluster


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    import shutil

    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed")
    with private_redis() as server:
        yield server


@asynccontextmanager
async def serving(database_url: str, **env: str) -> AsyncIterator[RunningServer]:
    """`http_server` entered and left in a worker thread, so this event loop (which may be running a
    proxy the server connects through) keeps turning while the server starts and shuts down."""
    manager = http_server(database_url, **env)
    with anyio.fail_after(60):
        server = await anyio.to_thread.run_sync(manager.__enter__)
    try:
        yield server
    finally:
        with anyio.fail_after(60), anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(manager.__exit__, None, None, None)


def crash_reasons(server: RunningServer, limit: int = 3) -> list[str]:
    """The last line of each exception the server logged as a crash (for assertion messages)."""
    reasons: list[str] = []
    for line in server.stderr_lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "crashed" in str(record.get("event", "")):
            lines = [x for x in str(record.get("exception", "")).splitlines() if x.strip() and "(Background" not in x]
            reasons.append(lines[-1] if lines else str(record))
    return sorted(set(reasons))[:limit]
