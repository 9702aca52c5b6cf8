"""Starting `handoff` wrong, the way new users do: each mistake is one line on stderr naming the cause
and the fix, a non-zero exit within 5 s, and no process left behind. Signals stop it in every state."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.e2e.servers import HANDOFF, server_env

pytestmark = pytest.mark.slow

PROMPT_SECONDS = 5.0
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def run_until_exit(
    args: list[str], env: dict[str, str], *, stdin: bytes | None = None, timeout: float = PROMPT_SECONDS
) -> tuple[int, str, str, float]:
    """Run the command in its own process group; (exit code, stdout, stderr, seconds taken)."""
    started = time.monotonic()
    process = subprocess.Popen(
        [HANDOFF, *args],
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(stdin, timeout=timeout + 10)
    finally:
        _kill_group(process.pid)
    elapsed = time.monotonic() - started
    assert_group_gone(process.pid)
    return process.returncode, out.decode(), err.decode(), elapsed


def _kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def assert_group_gone(pgid: int) -> None:
    """No process of the server's group (workers, helpers) outlived it."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    _kill_group(pgid)
    pytest.fail("a process of the server's group was still running after it exited")


def assert_one_line_failure(code: int, err: str, elapsed: float, *phrases: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0
    assert elapsed < PROMPT_SECONDS, f"took {elapsed:.1f} s"
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("handoff: ")
    for phrase in phrases:
        assert phrase in lines[0], f"{phrase!r} not in {lines[0]!r}"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'handoff.db'}"


def test_busy_port_fails_at_once(db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err, elapsed = run_until_exit(["serve", "--port", str(port)], server_env(db_url))
    assert_one_line_failure(code, err, elapsed, f"127.0.0.1:{port}", "already in use", "--port")


def test_unsupported_database_url_names_the_setting() -> None:
    code, _, err, elapsed = run_until_exit(["serve", "--port", "0"], server_env("mysql://root:hunter2@db/x"))
    assert_one_line_failure(code, err, elapsed, "HANDOFF_DATABASE_URL", "postgresql://")
    assert "hunter2" not in err


def test_database_down_names_it_and_the_doctor() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://postgres:secret@127.0.0.1:{port}/handoff"
    code, _, err, elapsed = run_until_exit(["serve", "--port", "0"], server_env(url))
    assert_one_line_failure(code, err, elapsed, f"127.0.0.1:{port}", "connection refused", "handoff doctor")
    assert "secret" not in err


def test_database_that_never_answers_times_out_promptly() -> None:
    with _silent_listener() as port:
        url = f"postgresql://postgres@127.0.0.1:{port}/handoff"
        code, _, err, elapsed = run_until_exit(["serve", "--port", "0"], server_env(url))
    assert_one_line_failure(code, err, elapsed, "no answer in time")


def _write_schema_revision(path: Path, revision: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        db.execute("INSERT INTO alembic_version VALUES (?)", (revision,))


def test_schema_behind_without_auto_migrate_says_run_migrate(tmp_path: Path) -> None:
    _write_schema_revision(tmp_path / "old.db", "0001")
    env = server_env(f"sqlite:///{tmp_path / 'old.db'}", HANDOFF_DB__AUTO_MIGRATE="false")
    code, _, err, elapsed = run_until_exit(["serve", "--port", "0"], env)
    assert_one_line_failure(code, err, elapsed, "schema 0001", "handoff migrate")


def test_schema_newer_than_the_code_says_upgrade(tmp_path: Path) -> None:
    _write_schema_revision(tmp_path / "new.db", "9999")
    code, _, err, elapsed = run_until_exit(["stdio"], server_env(f"sqlite:///{tmp_path / 'new.db'}"), stdin=b"")
    assert_one_line_failure(code, err, elapsed, "9999", "upgrade handoff")
    assert (tmp_path / "new.db").exists()


def test_invalid_setting_names_the_variable(db_url: str) -> None:
    code, _, err, elapsed = run_until_exit(["serve"], server_env(db_url, HANDOFF_HTTP__PORT="eighty"))
    assert_one_line_failure(code, err, elapsed, "HANDOFF_HTTP__PORT")


def test_stdio_client_started_against_http_serve_is_told_to_use_stdio(db_url: str) -> None:
    message = (json.dumps(INITIALIZE) + "\n").encode()
    code, out, err, _elapsed = run_until_exit(["serve", "--port", "0"], server_env(db_url), stdin=message, timeout=15)
    assert code != 0
    assert "handoff stdio" in err.strip().splitlines()[-1]
    assert "serving MCP at" in out  # it had started as HTTP, then stopped on the client's first message


@pytest.mark.parametrize("how", [["stdio"], ["serve", "--transport", "stdio"], ["serve"]])
def test_stdio_stdout_carries_only_protocol_messages(db_url: str, how: list[str]) -> None:
    env = server_env(db_url, HANDOFF_TRANSPORT="stdio", HANDOFF_LOG_LEVEL="INFO")
    message = (json.dumps(INITIALIZE) + "\n").encode()
    code, out, err, _ = run_until_exit(how, env, stdin=message, timeout=15)
    assert code == 0, err
    replies = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in replies] == [0]
    assert replies[0]["result"]["serverInfo"]["name"]
    assert '"event"' in err  # the logs went to stderr


def test_one_shot_commands_print_no_log_lines(db_url: str) -> None:
    env = server_env(db_url)
    del env["HANDOFF_LOG_LEVEL"]  # the default level: a server would log at INFO
    code, out, err, _ = run_until_exit(["sessions", "list", "--json"], env)
    assert code == 0
    assert json.loads(out) == []
    assert err == ""


# -- signals --------------------------------------------------------------------------------------


@contextmanager
def _silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a database hung mid-start)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        server.close()


def _start(args: list[str], env: dict[str, str], ready: str | None, stdin: int | None) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [HANDOFF, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    if ready is not None:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        line = b""
        while ready.encode() not in line:
            assert time.monotonic() < deadline and process.poll() is None, "server did not start"
            line = process.stdout.readline()
    return process


def _stops_on(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        process.send_signal(signum)
        process.wait(timeout=PROMPT_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {PROMPT_SECONDS} s after signal {signum}")
    finally:
        _kill_group(process.pid)
        if process.stdout is not None:
            process.stdout.close()
    assert_group_gone(process.pid)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_http_server_while_serving(db_url: str, signum: int) -> None:
    process = _start(["serve", "--port", "0"], server_env(db_url), "serving MCP at", subprocess.DEVNULL)
    _stops_on(process, signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_stdio_server_while_serving(db_url: str, signum: int) -> None:
    process = _start(["stdio"], server_env(db_url), None, subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
    process.stdin.flush()
    assert b'"result"' in process.stdout.readline()  # it is serving
    _stops_on(process, signum)
    process.stdin.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_server_still_waiting_for_its_database(signum: int) -> None:
    with _silent_listener() as port:
        env = server_env(f"postgresql://postgres@127.0.0.1:{port}/handoff")
        process = _start(["serve", "--port", "0"], env, None, subprocess.DEVNULL)
        time.sleep(1.0)  # not synchronisation: we want it somewhere inside start-up, wherever that is
        _stops_on(process, signum)


def test_wildcard_host_banner_prints_urls_that_work_and_the_allowed_hosts_hint(db_url: str) -> None:
    env = server_env(db_url, HANDOFF_AUTH__MODE="tokens")  # a wildcard bind refuses to start without auth
    process = _start(["serve", "--host", "0.0.0.0", "--port", "0"], env, None, subprocess.DEVNULL)
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while not any(line.startswith("client config") for line in lines):
        assert time.monotonic() < deadline and process.poll() is None
        lines.append(process.stdout.readline().decode())
    try:
        banner = "".join(lines)
        assert "0.0.0.0" not in banner
        url = banner.split("serving MCP at ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert "HANDOFF_HTTP__ALLOWED_HOSTS" in banner
        import httpx

        health = httpx.get(url.removesuffix("/mcp") + "/healthz", timeout=5)
        assert health.status_code == 200
        assert httpx.post(url, content="{}", timeout=5).status_code == 401
    finally:
        _stops_on(process, signal.SIGTERM)
