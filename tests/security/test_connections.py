"""Connections against abuse, on a real `handoff serve`: idle sockets and slow requests are closed,
connections past the limit are refused at once, and failed accepts are logged once per interval."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.servers import http_server

pytestmark = pytest.mark.slow

FAST = {"HANDOFF_HTTP__HEADER_TIMEOUT_SECONDS": "1", "HANDOFF_HTTP__BODY_TIMEOUT_SECONDS": "1"}


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closes `sock` (reading whatever it sent first); fails past `seconds`."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(tmp_path: Path) -> None:
    with http_server(f"sqlite:///{tmp_path / 'i.db'}", **FAST) as server:
        with closing(socket.create_connection(_address(server.url))) as idle:
            assert 0.5 < _closed_within(idle, 10) < 5
        assert httpx.get(f"{server.base}/healthz").status_code == 200


def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_timeout(tmp_path: Path) -> None:
    with (
        http_server(f"sqlite:///{tmp_path / 'l.db'}", **FAST) as server,
        closing(socket.create_connection(_address(server.url))) as slow,
    ):
        started = time.monotonic()
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"x-padding: " + b"a" * 200
        try:
            for byte in request:  # the whole request would take 12 s at this pace
                slow.send(bytes([byte]))
                time.sleep(0.05)
                if time.monotonic() - started > 8:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert _closed_within(slow, 10) + (time.monotonic() - started) < 5


def test_a_body_that_does_not_arrive_in_time_is_cut_off(tmp_path: Path) -> None:
    with (
        http_server(f"sqlite:///{tmp_path / 'b.db'}", **FAST) as server,
        closing(socket.create_connection(_address(server.url))) as slow,
    ):
        slow.sendall(
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"accept: application/json, text/event-stream\r\ncontent-length: 1000\r\n\r\n{"
        )
        assert _closed_within(slow, 10) < 5


def test_connections_past_the_limit_are_answered_503_and_closed(tmp_path: Path) -> None:
    with http_server(f"sqlite:///{tmp_path / 'c.db'}", HANDOFF_HTTP__MAX_CONNECTIONS="5") as server:
        address = _address(server.url)
        held = [socket.create_connection(address) for _ in range(5)]
        try:
            with closing(socket.create_connection(address)) as extra:
                extra.settimeout(5)
                answer = b""
                while chunk := extra.recv(4096):
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 503 ")
                assert b"HANDOFF_HTTP__MAX_CONNECTIONS" in answer
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 10
        while httpx.get(f"{server.base}/healthz").status_code != 200:  # the held ones are gone
            assert time.monotonic() < deadline
            time.sleep(0.1)


@contextmanager
def _connections(address: tuple[str, int], count: int) -> Iterator[list[socket.socket]]:
    opened = [socket.create_connection(address) for _ in range(count)]
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def test_a_flood_of_connections_past_the_descriptor_limit_is_refused_without_flooding_the_log(tmp_path: Path) -> None:
    # The server runs with at most 128 descriptors; 300 connections would exhaust them. asyncio then
    # reported every failed accept with a traceback (thousands of lines a second). The connection limit
    # is fitted below the descriptors instead: the surplus is answered 503, logged once.
    launcher = ("prlimit", "--nofile=128:128", "--")
    with http_server(f"sqlite:///{tmp_path / 'a.db'}", launcher=launcher, HANDOFF_LOG_LEVEL="WARNING") as server:
        with _connections(_address(server.url), 300):
            time.sleep(3)
        deadline = time.monotonic() + 15
        while True:  # served again once the connections are gone
            try:
                if httpx.get(f"{server.base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
    lines = server.stderr_lines
    assert len(lines) <= 5, "".join(lines[-20:])
    assert sum("file descriptor limit below" in line for line in lines) == 1
    assert sum("HANDOFF_HTTP__MAX_CONNECTIONS reached" in line for line in lines) == 1
    assert not any("accept()" in line or "_start_serving" in line for line in lines)
