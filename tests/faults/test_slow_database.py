"""A slow, then hanging, connection to PostgreSQL (a stalling TCP proxy between server and database).

With a short request deadline the stalled calls fail with `unavailable` close to the deadline, the
server keeps answering everything that does not need the database at once (no pile-up), and once the
connection flows again the server recovers by itself with every acknowledged entry intact.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack

import anyio
import httpx
import pytest
from mcp.client import Client

from tests.conftest import structured
from tests.faults.conftest import crash_reasons, serving
from tests.faults.ledger import Ledger, assert_intact, read_all_entries, settle, write_until
from tests.faults.proxy import faulty_proxy
from tests.faults.services import PrivatePostgres

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

WRITERS = 6
DEADLINE = 2.0
HANG_LIMIT = DEADLINE + 8  # past this a call counts as hung
POOL_LIMIT = 5  # pool size + overflow
PROMPT = 0.5  # seconds within which a call that needs no database must be answered, stall or not


async def test_stalled_database_connection_gives_deadline_errors_without_pile_up_and_recovers(
    postgres: PrivatePostgres,
) -> None:
    ledger = Ledger("slow")
    stop = anyio.Event()
    env = {
        "HANDOFF_LIMITS__REQUEST_TIMEOUT_SECONDS": str(DEADLINE),
        "HANDOFF_DB__POOL_SIZE": "3",
        "HANDOFF_DB__MAX_OVERFLOW": str(POOL_LIMIT - 3),
        "HANDOFF_DB__POOL_TIMEOUT_SECONDS": "1",
        "HANDOFF_DB__CONNECT_TIMEOUT_SECONDS": "1",
        "HANDOFF_DB__BREAKER_RESET_SECONDS": "1",
    }
    async with faulty_proxy("127.0.0.1", postgres.port) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"
        async with serving(url, **env) as server:
            with anyio.fail_after(150):
                async with AsyncExitStack() as stack:
                    http = await stack.enter_async_context(httpx.AsyncClient(base_url=server.base, timeout=10))
                    observer = await stack.enter_async_context(Client(server.url))
                    writers = [await stack.enter_async_context(Client(server.url)) for _ in range(WRITERS)]
                    structured(
                        await observer.call_tool("register_session", {"session_key": "slow", "source_agent": "lead"})
                    )
                    for i in range(WRITERS):
                        structured(
                            await observer.call_tool(
                                "request_handoff",
                                {"session_key": "slow", "target_agent": f"agent-{i}", "handoff_type": "collaboration"},
                            )
                        )
                    prompt_checks: list[float] = []

                    async with anyio.create_task_group() as tg:
                        for i, client in enumerate(writers):
                            tg.start_soon(
                                lambda c=client, i=i: write_until(
                                    c, ledger, i, f"agent-{i}", stop, max_appends=300, hang_limit=HANG_LIMIT
                                )
                            )
                        try:
                            # A slow network: every chunk each way is delayed, appends still succeed.
                            proxy.latency = 0.02
                            await ledger.wait_until(lambda: len(ledger.acks) >= 20, 30, "20 appends over a slow link")
                            proxy.latency = 0.0

                            proxy.stall()
                            stalled_at = time.monotonic()
                            # Two full deadlines and more: the calls stalled first have failed, and new ones
                            # keep arriving; none may take much longer than the deadline.
                            await ledger.wait_until(
                                lambda: (
                                    len(ledger.failures_since(stalled_at)) >= WRITERS
                                    and time.monotonic() - stalled_at > 3 * DEADLINE
                                ),
                                10 * DEADLINE,
                                "stalled calls to fail",
                            )
                            for _ in range(3):
                                started = time.monotonic()
                                with anyio.fail_after(5):
                                    # The full MCP tool path, refused by validation before any database work.
                                    refused = await observer.call_tool("get_context", {"session_key": "no spaces!"})
                                    health = await http.get("/healthz")
                                prompt_checks.append(time.monotonic() - started)
                                assert refused.is_error and '"code": "invalid_input"' in refused.content[0].text
                                assert health.status_code == 200
                            with anyio.fail_after(HANG_LIMIT):
                                started = time.monotonic()
                                read_while_stalled = await observer.call_tool("get_session", {"session_key": "slow"})
                                read_elapsed = time.monotonic() - started

                            proxy.resume()
                            resumed_at = time.monotonic()
                            await ledger.wait_until(
                                lambda: any(t > resumed_at for t in ledger.acks), 15, "the first append after the stall"
                            )
                            recovered_in = min(t for t in ledger.acks if t > resumed_at) - resumed_at
                            after_recovery = len(ledger.acks)
                            await ledger.wait_until(
                                lambda: len(ledger.acks) >= after_recovery + 20, 30, "20 appends after the stall"
                            )
                        finally:
                            proxy.resume()
                            stop.set()

                    await settle(observer, ledger, hang_limit=HANG_LIMIT)
                    entries = await read_all_entries(observer, "slow")
                    # Counted at the database itself (the proxy cannot tell a connection the server dropped).
                    server_connections = int(
                        await anyio.to_thread.run_sync(
                            postgres.psql, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'handoff'"
                        )
                    )

    assert read_while_stalled.is_error
    assert '"code": "unavailable"' in read_while_stalled.content[0].text
    assert read_elapsed <= DEADLINE + 1.0, f"a read took {read_elapsed:.2f}s while the database hung"
    assert max(prompt_checks) < PROMPT, f"ping/healthz took {max(prompt_checks):.2f}s while the database hung"

    stalled = ledger.failures_since(stalled_at)
    assert stalled, "the stall was never noticed: the test injected no fault"
    codes = {f.code for f in ledger.failures}
    assert codes == {"unavailable"}, (codes, crash_reasons(server))
    slowest = max(f.elapsed for f in ledger.failures)
    assert slowest <= DEADLINE + 1.0, f"a failing call took {slowest:.2f}s with a {DEADLINE}s deadline (pile-up)"
    assert any("deadline" in f.message for f in stalled), "no stalled call ran into the request deadline"
    assert recovered_in < 5.0
    assert 1 <= server_connections <= POOL_LIMIT, f"{server_connections} connections left open after the stall"
    assert_intact(entries, ledger)
