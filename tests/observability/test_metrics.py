"""/metrics: counters move after known calls; scrape-time gauges read pools, cache, breakers and the DB."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError

from handoff.container import Container
from handoff.domain.models import HandoffStatus, HandoffType
from handoff.errors import DatabaseUnavailable
from handoff.observability.metrics import Metrics
from handoff.services.lifecycle import JobReport
from tests.conftest import structured, tool_error
from tests.observability.conftest import scrape

pytestmark = pytest.mark.anyio

ALPHA = "fix the bug in the parser"  # 25 bytes
GAMMA = "überall ✓"  # 9 characters, 12 bytes in UTF-8: bytes are counted, not characters


async def test_tool_calls_are_counted_by_outcome_with_error_codes_and_latency(client: Client, metrics: Metrics) -> None:
    structured(await client.call_tool("register_session", {"session_key": "s1", "source_agent": "a"}))
    for content in (ALPHA, GAMMA):
        structured(
            await client.call_tool(
                "update_context", {"session_key": "s1", "context_type": "message", "content": content}
            )
        )
    assert tool_error(await client.call_tool("get_session", {"session_key": "missing"}))["code"] == "not_found"
    assert (
        tool_error(await client.call_tool("register_session", {"session_key": "s1", "source_agent": "a"}))["code"]
        == "already_exists"
    )
    bad_type = await client.call_tool("update_context", {"session_key": "s1", "context_type": "x", "content": "y"})
    assert bad_type.is_error

    m = await scrape(metrics)
    assert m.content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert m.value("handoff_tool_calls_total", tool="register_session", outcome="ok") == 1
    assert m.value("handoff_tool_calls_total", tool="register_session", outcome="error") == 1
    assert m.value("handoff_tool_calls_total", tool="update_context", outcome="ok") == 2
    assert m.value("handoff_tool_calls_total", tool="update_context", outcome="error") == 1
    assert m.value("handoff_tool_errors_total", tool="get_session", code="not_found") == 1
    assert m.value("handoff_tool_errors_total", tool="register_session", code="already_exists") == 1
    assert m.value("handoff_tool_errors_total", tool="update_context", code="invalid_input") == 1
    assert m.value("handoff_tool_duration_seconds_count", tool="update_context") == 3
    assert m.value("handoff_tool_duration_seconds_bucket", tool="update_context", le="+Inf") == 3
    assert 0 < (m.value("handoff_tool_duration_seconds_sum", tool="update_context") or 0) < 30


async def test_appended_bytes_and_requested_handoffs_are_counted_once_per_real_append(
    client: Client, metrics: Metrics
) -> None:
    structured(await client.call_tool("register_session", {"session_key": "s1", "source_agent": "a"}))
    for context_type, content in (("message", ALPHA), ("message", GAMMA), ("file", "x = 1\n")):
        structured(
            await client.call_tool(
                "update_context", {"session_key": "s1", "context_type": context_type, "content": content}
            )
        )
    retried = {"session_key": "s1", "context_type": "tool_call", "content": "ran pytest", "idempotency_key": "k1"}
    structured(await client.call_tool("update_context", retried))
    replay = structured(await client.call_tool("update_context", retried))
    assert replay["entry"]["replayed"] is True
    for handoff_type in ("context_transfer", "collaboration"):
        structured(
            await client.call_tool(
                "request_handoff",
                {"session_key": "s1", "target_agent": f"b-{handoff_type}", "handoff_type": handoff_type},
            )
        )
    handoff = structured(
        await client.call_tool(
            "request_handoff", {"session_key": "s1", "target_agent": "c", "handoff_type": "full_handoff"}
        )
    )
    # Reading a handoff back is not requesting one.
    structured(await client.call_tool("get_handoff", {"handoff_id": handoff["handoff"]["handoff_id"]}))

    m = await scrape(metrics)
    assert m.value("handoff_context_appended_bytes_total", context_type="message") == 25 + 12
    assert m.value("handoff_context_appended_entries_total", context_type="message") == 2
    assert m.value("handoff_context_appended_bytes_total", context_type="file") == 6
    assert m.value("handoff_context_appended_bytes_total", context_type="tool_call") == len("ran pytest")
    assert m.value("handoff_context_appended_entries_total", context_type="tool_call") == 1
    assert m.samples("handoff_handoffs_requested_total") == {
        (("handoff_type", "context_transfer"),): 1,
        (("handoff_type", "collaboration"),): 1,
        (("handoff_type", "full_handoff"),): 1,
    }


async def test_unknown_tool_names_share_one_label(client: Client, metrics: Metrics) -> None:
    for name in ("nope", "drop_table", "x" * 500):
        assert (await client.call_tool(name, {})).is_error
    m = await scrape(metrics)
    assert m.value("handoff_tool_calls_total", tool="unknown", outcome="error") == 3
    assert m.value("handoff_tool_errors_total", tool="unknown", code="unknown_tool") == 3
    assert {dict(k)["tool"] for k in m.samples("handoff_tool_calls_total")} == {"unknown"}


async def test_resource_reads_are_labelled_by_uri_template(client: Client, metrics: Metrics) -> None:
    structured(await client.call_tool("register_session", {"session_key": "s1", "source_agent": "a"}))
    await client.read_resource("handoff://sessions/s1")
    await client.read_resource("handoff://sessions/s1/context")
    await client.read_resource("handoff://sessions/s1/context?cursor=&limit=5")
    with pytest.raises(MCPError):
        await client.read_resource("handoff://sessions/ghost/context")

    m = await scrape(metrics)
    template = "handoff://sessions/{session_key}/context"
    assert m.value("handoff_resource_reads_total", resource=template, outcome="ok") == 2
    assert m.value("handoff_resource_reads_total", resource=template, outcome="error") == 1
    assert m.value("handoff_resource_errors_total", resource=template, code="not_found") == 1
    assert m.value("handoff_resource_reads_total", resource="handoff://sessions/{session_key}", outcome="ok") == 1
    assert m.value("handoff_resource_duration_seconds_count", resource=template) == 3
    assert not any("s1" in dict(k)["resource"] for k in m.samples("handoff_resource_reads_total"))


async def test_scrape_reports_sessions_and_handoffs_from_the_database(client: Client, metrics: Metrics) -> None:
    for key in ("s1", "s2", "s3"):
        structured(await client.call_tool("register_session", {"session_key": key, "source_agent": "a"}))
    structured(await client.call_tool("complete_session", {"session_key": "s3"}))
    structured(
        await client.call_tool(
            "request_handoff", {"session_key": "s1", "target_agent": "b", "handoff_type": "full_handoff"}
        )
    )
    m = await scrape(metrics)
    assert m.samples("handoff_sessions") == {
        (("status", "active"),): 2,
        (("status", "dormant"),): 0,
        (("status", "completed"),): 1,
        (("status", "expired"),): 0,
        (("status", "archived"),): 0,
    }
    handoffs = m.samples("handoff_handoffs")
    assert handoffs[(("handoff_type", "full_handoff"), ("status", "pending"))] == 1
    assert sum(handoffs.values()) == 1
    assert len(handoffs) == len(HandoffType) * len(HandoffStatus)  # every type x status, zeros included
    assert m.value("handoff_scrape_source_up", source="inventory") == 1
    assert m.value("handoff_ready") == 1
    assert m.value("handoff_dependency_up", dependency="database") == 1
    assert m.value("handoff_dependency_up", dependency="cache") == 1


async def test_scrape_reports_pools_cache_and_breakers(client: Client, metrics: Metrics, observed: Container) -> None:
    structured(await client.call_tool("register_session", {"session_key": "s1", "source_agent": "a"}))
    structured(
        await client.call_tool("update_context", {"session_key": "s1", "context_type": "message", "content": "hi"})
    )
    for _ in range(3):
        structured(await client.call_tool("get_context", {"session_key": "s1"}))

    m = await scrape(metrics)
    backend = observed.engine.dialect.name
    assert m.value("handoff_cache_misses_total", backend="memory") == 1
    assert m.value("handoff_cache_hits_total", backend="memory") == 2
    assert m.value("handoff_cache_sets_total", backend="memory") == 1
    assert m.value("handoff_cache_errors_total", backend="memory") == 0
    assert m.value("handoff_circuit_breaker_state", breaker="database") == 0
    pool = "sqlite_requests" if backend == "sqlite" else "main"
    assert m.value("handoff_db_pool_checked_out", pool=pool) == 0
    assert (m.value("handoff_db_pool_idle", pool=pool) or 0) >= 1
    assert m.value("handoff_db_pool_capacity", pool="main") is not None
    # Every unit of work finished: nothing waiting, nothing in progress; reads and writes were timed.
    for mode in ("read", "write"):
        assert m.value("handoff_db_units_waiting", mode=mode) == 0
        assert m.value("handoff_db_units_in_progress", mode=mode) == 0
        assert (m.value("handoff_db_unit_wait_seconds_count", mode=mode) or 0) >= 1

    assert observed.db_breaker is not None
    for _ in range(observed.settings.db.breaker_failure_threshold):
        with pytest.raises(DatabaseUnavailable):
            await observed.db_breaker.call(_database_down)
    assert tool_error(await client.call_tool("get_session", {"session_key": "s1"}))["code"] == "unavailable"
    m = await scrape(metrics)
    assert m.value("handoff_circuit_breaker_state", breaker="database") == 2
    assert m.value("handoff_circuit_breaker_opened_total", breaker="database") == 1
    assert (m.value("handoff_circuit_breaker_rejections_total", breaker="database") or 0) >= 1
    assert m.value("handoff_tool_errors_total", tool="get_session", code="unavailable") == 1


async def _database_down() -> None:
    raise DatabaseUnavailable("the database is unavailable (test)")


async def test_a_hung_source_is_cut_off_and_reported_instead_of_stale_numbers() -> None:
    metrics = Metrics(scrape_timeout_seconds=0.2, inventory_max_age_seconds=0.0)
    healthy = True

    async def sessions() -> dict[str, int]:
        if not healthy:
            await anyio.sleep_forever()  # a database that accepts the query and never answers
        return {"active": 4}

    async def handoffs() -> dict[tuple[str, str], int]:
        return {}

    async def readiness() -> dict[str, object]:
        if not healthy:
            await anyio.sleep_forever()
        return {"ready": True, "checks": [{"name": "database", "ok": True, "latency_ms": 1.5}]}

    metrics.watch_inventory(sessions, handoffs)
    metrics.watch_readiness(readiness)
    m = await scrape(metrics)
    assert m.value("handoff_sessions", status="active") == 4
    assert m.value("handoff_ready") == 1
    assert m.value("handoff_dependency_latency_seconds", dependency="database") == 0.0015

    healthy = False
    with anyio.fail_after(2):
        m = await scrape(metrics)
    assert m.value("handoff_scrape_source_up", source="inventory") == 0
    assert m.value("handoff_scrape_source_up", source="readiness") == 0
    assert m.value("handoff_ready") == 0
    assert "handoff_sessions" not in m.families


async def test_job_runs_are_recorded_with_outcome_duration_and_counts() -> None:
    metrics = Metrics()
    metrics.record_job_run("expire_sessions", 120, 7, 0, 0.25, True, at=1_700_000_000.0)
    metrics.record_job_run("expire_sessions", 50, 1, 2, 1.5, False, at=1_700_000_060.0)
    metrics.record_job_skipped("expire_sessions")
    m = await scrape(metrics)
    assert m.value("handoff_job_runs_total", job="expire_sessions", outcome="ok") == 1
    assert m.value("handoff_job_runs_total", job="expire_sessions", outcome="failed") == 1
    assert m.value("handoff_job_runs_total", job="expire_sessions", outcome="skipped") == 1
    assert m.value("handoff_job_examined_total", job="expire_sessions") == 170
    assert m.value("handoff_job_changed_total", job="expire_sessions") == 8
    assert m.value("handoff_job_errors_total", job="expire_sessions") == 2
    assert m.value("handoff_job_duration_seconds_count", job="expire_sessions") == 2
    assert m.value("handoff_job_duration_seconds_sum", job="expire_sessions") == 1.75
    assert m.value("handoff_job_last_success_timestamp_seconds", job="expire_sessions") == 1_700_000_000.0
    assert m.value("handoff_job_last_run_timestamp_seconds", job="expire_sessions") == 1_700_000_060.0


async def test_the_job_runner_observer_records_reports_and_failures() -> None:
    metrics = Metrics(wall_clock=lambda: 1_700_000_000.0)
    started = datetime(2026, 1, 1, tzinfo=UTC)
    metrics.observe_job(JobReport("purge", started, examined=40, changed=3, errors=0, duration_ms=1250), "purge", True)
    metrics.observe_job(None, "purge", False)  # the database was down: no report
    m = await scrape(metrics)
    assert m.value("handoff_job_runs_total", job="purge", outcome="ok") == 1
    assert m.value("handoff_job_runs_total", job="purge", outcome="failed") == 1
    assert m.value("handoff_job_examined_total", job="purge") == 40
    assert m.value("handoff_job_changed_total", job="purge") == 3
    assert m.value("handoff_job_duration_seconds_sum", job="purge") == 1.25
    assert m.value("handoff_job_duration_seconds_count", job="purge") == 1
    assert m.value("handoff_job_last_success_timestamp_seconds", job="purge") == 1_700_000_000.0


async def test_each_container_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.record_handoff_requested("full_handoff")
    assert (await scrape(first)).value("handoff_handoffs_requested_total", handoff_type="full_handoff") == 1
    assert (await scrape(second)).value("handoff_handoffs_requested_total", handoff_type="full_handoff") is None
