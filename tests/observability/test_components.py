"""The pieces on their own: label bounding, wait gauges under real lock contention, Redis breaker state."""

from __future__ import annotations

import socket
from pathlib import Path

import anyio
import pytest
from mcp.client import Client

from handoff.cache.redis_cache import RedisCache
from handoff.config import Settings
from handoff.container import Container
from handoff.mcp.pipeline import RequestPipeline, _sdk_refusal, resource_label
from handoff.mcp.server import build_server
from handoff.observability.instrumented import InstrumentedCache, TransactionMetrics
from handoff.observability.metrics import Metrics
from handoff.storage.engine import create_sqlite_request_engine
from handoff.storage.uow import SqliteUnitOfWorkFactory
from tests.conftest import structured
from tests.observability.conftest import scrape
from tests.unit.test_architecture import violations

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("uri", "label", "session_key"),
    [
        ("handoff://sessions", "handoff://sessions", None),
        ("handoff://sessions?cursor=abc", "handoff://sessions", None),
        ("handoff://sessions/s-1", "handoff://sessions/{session_key}", "s-1"),
        ("handoff://sessions/s-1/context?cursor=c5&limit=10", "handoff://sessions/{session_key}/context", "s-1"),
        ("handoff://sessions/s-1/lifecycle", "handoff://sessions/{session_key}/lifecycle", "s-1"),
        ("handoff://sessions/s-1/secrets", "other", "s-1"),
        ("handoff://handoffs/0f3a", "handoff://handoffs/{handoff_id}", None),
        ("handoff://etc/passwd", "other", None),
        ("file:///etc/passwd", "other", None),
        ("", "other", None),
    ],
)
def test_resource_uris_reduce_to_their_template(uri: str, label: str, session_key: str | None) -> None:
    assert resource_label(uri) == (label, session_key)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('{"error": {"code": "not_found", "message": "m", "details": {}}}', "not_found"),
        ('{"error": {"code": "made_up_code"}}', "internal"),
        ("something else broke", "internal"),
    ],
)
def test_error_codes_of_sdk_refusals_stay_in_our_vocabulary(text: str, code: str) -> None:
    assert _sdk_refusal({"isError": True, "content": [{"type": "text", "text": text}]}) == code


async def test_tool_labels_are_capped(container: Container) -> None:
    metrics = Metrics()
    server = build_server(container)
    server.middleware[:] = [RequestPipeline(container.settings, metrics, max_tools=2)]
    async with Client(server) as client:
        structured(await client.call_tool("register_session", {"session_key": "s1", "source_agent": "a"}))
        structured(await client.call_tool("get_session", {"session_key": "s1"}))
        structured(await client.call_tool("list_sessions", {}))
        structured(await client.call_tool("get_session", {"session_key": "s1"}))
    m = await scrape(metrics)
    assert m.samples("handoff_tool_calls_total") == {
        (("outcome", "ok"), ("tool", "register_session")): 1,
        (("outcome", "ok"), ("tool", "get_session")): 2,
        (("outcome", "ok"), ("tool", "other")): 1,
    }


async def test_a_unit_of_work_blocked_on_the_write_lock_counts_as_waiting(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'locks.db'}")  # type: ignore[arg-type]
    engine = create_sqlite_request_engine(settings.database_url_value(), settings.db)
    metrics = Metrics(process_metrics=False)
    units = SqliteUnitOfWorkFactory(engine, observer=TransactionMetrics(metrics, system="sqlite"))

    def gauge(name: str) -> float:
        value = metrics.registry.get_sample_value(name, {"mode": "write"})
        return 0.0 if value is None else value

    finished = anyio.Event()

    async def second_writer() -> None:
        async with units(write=True):
            pass
        finished.set()

    try:
        first = units(write=True)
        await first.__aenter__()  # holds SQLite's write lock (BEGIN IMMEDIATE)
        async with anyio.create_task_group() as tg:
            tg.start_soon(second_writer)
            with anyio.fail_after(5):
                while gauge("handoff_db_units_waiting") < 1:
                    await anyio.sleep(0.01)
            for _ in range(10):
                await anyio.sleep(0)
            assert not finished.is_set()
            assert gauge("handoff_db_units_waiting") == 1
            assert gauge("handoff_db_units_in_progress") == 1
            await first.__aexit__(None, None, None)
            with anyio.fail_after(5):
                await finished.wait()
    finally:
        engine.dispose()
    assert gauge("handoff_db_units_waiting") == 0
    assert gauge("handoff_db_units_in_progress") == 0
    assert metrics.registry.get_sample_value("handoff_db_unit_wait_seconds_count", {"mode": "write"}) == 2


async def test_redis_failures_and_its_open_circuit_show_on_the_scrape() -> None:
    redis = RedisCache(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5, failure_threshold=3)
    cache = InstrumentedCache(redis)
    metrics = Metrics(process_metrics=False)
    metrics.watch_cache(cache)
    try:
        assert (await scrape(metrics)).value("handoff_circuit_breaker_state", breaker="redis") == 0
        for _ in range(4):
            assert await cache.get("page:v1:x") is None  # nothing listens: absorbed as a miss
    finally:
        await cache.close()
    m = await scrape(metrics)
    assert m.value("handoff_circuit_breaker_state", breaker="redis") == 2
    assert m.value("handoff_cache_errors_total", backend="redis") == 3
    assert m.value("handoff_cache_short_circuits_total", backend="redis") == 1
    assert m.value("handoff_cache_misses_total", backend="redis") == 4


def free_port() -> int:
    """A loopback port nothing listens on right now (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_observability_never_reaches_into_storage_or_entry_points() -> None:
    banned = ("handoff.storage", "handoff.mcp", "handoff.http", "handoff.cli", "handoff.container")
    assert violations("handoff.observability", lambda imp: not imp.target.startswith(banned)) == []
