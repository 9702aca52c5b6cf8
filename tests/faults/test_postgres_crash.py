"""PostgreSQL crashes (`pg_ctl stop -m immediate`) under load and comes back.

While it is down every call gets a clean `unavailable` within the request deadline (never an
internal error, never a hang); once it is back the server recovers by itself, and after the
clients resend what was left unanswered (under the same idempotency keys) the session holds every
append exactly once, gap-free, with every acknowledged entry intact.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack

import anyio
import httpx
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR

from tests.conftest import structured
from tests.faults.conftest import crash_reasons, serving
from tests.faults.ledger import Ledger, assert_intact, read_all_entries, settle, write_until
from tests.faults.services import PrivatePostgres

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

WRITERS = 6
DEADLINE = 4.0
HANG_LIMIT = DEADLINE + 6  # past this a call counts as hung
RECOVERY_LIMIT = 30.0
OUTAGE = 3.0  # seconds PostgreSQL stays down, at least


async def test_postgres_crash_mid_load_gives_clean_unavailable_then_recovers_without_losing_entries(
    postgres: PrivatePostgres,
) -> None:
    ledger = Ledger("crash")
    stop = anyio.Event()
    env = {
        "HANDOFF_LIMITS__REQUEST_TIMEOUT_SECONDS": str(DEADLINE),
        "HANDOFF_DB__BREAKER_RESET_SECONDS": "0.25",  # many recovery probes, some while PostgreSQL starts up
        "HANDOFF_DB__CONNECT_TIMEOUT_SECONDS": "2",
    }
    async with serving(postgres.url(), **env) as server:
        with anyio.fail_after(150):
            async with AsyncExitStack() as stack:
                http = await stack.enter_async_context(httpx.AsyncClient(base_url=server.base, timeout=10))
                observer = await stack.enter_async_context(Client(server.url))
                writers = [await stack.enter_async_context(Client(server.url)) for _ in range(WRITERS)]
                structured(
                    await observer.call_tool("register_session", {"session_key": "crash", "source_agent": "lead"})
                )
                for i in range(WRITERS):
                    structured(
                        await observer.call_tool(
                            "request_handoff",
                            {"session_key": "crash", "target_agent": f"agent-{i}", "handoff_type": "collaboration"},
                        )
                    )

                async with anyio.create_task_group() as tg:
                    for i, client in enumerate(writers):
                        tg.start_soon(
                            lambda c=client, i=i: write_until(
                                c, ledger, i, f"agent-{i}", stop, max_appends=400, hang_limit=HANG_LIMIT
                            )
                        )
                    try:
                        await ledger.wait_until(lambda: len(ledger.acks) >= 30, 30, "30 appends before the crash")

                        with anyio.fail_after(40):
                            await anyio.to_thread.run_sync(postgres.stop, "immediate")
                        down_at = time.monotonic()
                        acked_before_crash = len(ledger.acknowledged)

                        def down_a_while() -> bool:
                            # Several breaker periods: recovery probes must fail against a dead database.
                            since = ledger.failures_since(down_at)
                            opened = any("circuit open" in f.message for f in since)
                            return opened and len(since) >= 12 and time.monotonic() - down_at >= OUTAGE

                        await ledger.wait_until(
                            down_a_while, OUTAGE + 20, "the breaker to open while PostgreSQL is down"
                        )
                        with anyio.fail_after(10):
                            ready_while_down = await http.get("/readyz")
                            read_while_down = await observer.call_tool("get_context", {"session_key": "crash"})

                        with anyio.fail_after(40):
                            await anyio.to_thread.run_sync(postgres.start)
                        up_at = time.monotonic()
                        await ledger.wait_until(
                            lambda: any(t > up_at for t in ledger.acks),
                            RECOVERY_LIMIT,
                            "the first append after the restart",
                        )
                        recovered_in = min(t for t in ledger.acks if t > up_at) - up_at
                        acked_at_recovery = len(ledger.acks)
                        await ledger.wait_until(
                            lambda: len(ledger.acks) >= acked_at_recovery + 30, 30, "30 more appends after recovery"
                        )
                    finally:
                        stop.set()

                await settle(observer, ledger, hang_limit=HANG_LIMIT)
                entries = await read_all_entries(observer, "crash")
                session = structured(await observer.call_tool("get_session", {"session_key": "crash"}))["session"]
                ready_after = await http.get("/readyz")

    assert ready_while_down.status_code == 503, ready_while_down.text
    assert read_while_down.is_error
    assert '"code": "unavailable"' in read_while_down.content[0].text
    assert ready_after.status_code == 200, ready_after.text
    assert recovered_in < RECOVERY_LIMIT

    assert_intact(entries, ledger)
    assert session["entry_count"] == len(entries) == len(ledger.attempts)
    assert acked_before_crash >= 30

    down_failures = ledger.failures_since(down_at)
    assert down_failures, "the crash was never noticed: the test injected no fault"
    codes = {f.code for f in ledger.failures}
    assert codes == {"unavailable"}, (codes, crash_reasons(server))
    slowest = max(f.elapsed for f in ledger.failures)
    assert slowest <= DEADLINE + 1.0, f"a failing call took {slowest:.2f}s, past the {DEADLINE}s deadline"
    assert any("database is unavailable (circuit open" in f.message for f in down_failures)
    assert crash_reasons(server) == []


async def test_prompts_and_resources_report_a_database_outage_as_unavailable_not_as_bad_input(
    postgres: PrivatePostgres,
) -> None:
    env = {"HANDOFF_LIMITS__REQUEST_TIMEOUT_SECONDS": str(DEADLINE), "HANDOFF_DB__CONNECT_TIMEOUT_SECONDS": "2"}
    async with serving(postgres.url(), **env) as server:
        with anyio.fail_after(120):
            async with Client(server.url) as client:
                structured(await client.call_tool("register_session", {"session_key": "out", "source_agent": "a"}))
                handoff = structured(
                    await client.call_tool("request_handoff", {"session_key": "out", "target_agent": "b"})
                )
                handoff_id = handoff["handoff"]["handoff_id"]
                await anyio.to_thread.run_sync(postgres.stop, "immediate")
                try:
                    with pytest.raises(MCPError) as prompt_refused:
                        await client.get_prompt("resume_handoff", {"handoff_id": handoff_id, "agent": "b"})
                    with pytest.raises(MCPError) as read_refused:
                        await client.read_resource("handoff://sessions/out/context")
                finally:
                    await anyio.to_thread.run_sync(postgres.start)
                # Back up: the same prompt answers again (the outage was not remembered as bad input).
                with anyio.fail_after(60):
                    while True:
                        try:
                            resumed = await client.get_prompt(
                                "resume_handoff", {"handoff_id": handoff_id, "agent": "b"}
                            )
                            break
                        except MCPError as error:
                            assert error.error.data["code"] == "unavailable", error.error
                            await anyio.sleep(0.5)

    for refused in (prompt_refused.value.error, read_refused.value.error):
        # -32603 with our code: the client may retry; -32602 would tell it its arguments were wrong.
        assert refused.code == INTERNAL_ERROR, refused
        assert refused.data["code"] == "unavailable", refused
        assert "Traceback" not in refused.message and "asyncpg" not in refused.message
    assert "You have accepted this handoff" in resumed.messages[0].content.text  # type: ignore[union-attr]
    assert crash_reasons(server) == []
