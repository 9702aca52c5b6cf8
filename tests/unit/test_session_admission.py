from __future__ import annotations

from typing import Any

import pytest

from handoff.http.admission import _may_open_session


def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "path": "/mcp", "headers": [(b"host", b"127.0.0.1"), *headers]}


@pytest.mark.parametrize(
    ("headers", "opens"),
    [
        ((), True),
        (((b"mcp-protocol-version", b"2025-06-18"),), True),  # a 2025-era initialize may carry one
        (((b"mcp-session-id", b"abc"),), False),
        (((b"mcp-protocol-version", b"2026-07-28"),), False),  # sessionless revision: no session opens
        (((b"mcp-protocol-version", b"bogus"),), False),  # the SDK answers it without a session too
    ],
)
def test_only_requests_the_sdk_would_open_a_session_for_count_against_the_cap(
    headers: tuple[tuple[bytes, bytes], ...], opens: bool
) -> None:
    assert _may_open_session(scope(*headers)) is opens
