"""A normal client's latency while others abuse the server, and the server's memory meanwhile.

    .venv/bin/python bench/bench_abuse.py [--quick] [--calls N]

Starts `handoff serve --port 0` (defaults, fresh SQLite file) as a subprocess, the way users run it.
A normal client (its own session, from 127.0.0.1) calls `update_context` with a 200-byte message in
a loop; its p50/p99 is measured quiet, then under each attack in turn, run from other loopback
addresses by threads of this process:

  idle_sockets   1,000 connections that never send a byte (re-opened as the server closes them)
  sessions       10,000 `initialize` calls never used again: 100 addresses x 100 sessions, each
                 address up to its per-principal cap (one more from each is refused with 429),
                 measured while they are being opened
  sessions_held  the same 10,000 sessions, open and idle (the server keeps unused sessions 900 s
                 in this run instead of 60 s, so none is closed before the end)
  slowloris      500 connections sending request headers one byte a second (re-opened when closed)

Each attack phase measures at least 15 s, past the server's 10 s header timeout, so its closing of the
idle and slow connections (and their re-opening) falls inside the measurement.

Goals (issue 10): under each attack the normal client's p99 <= 2x its quiet p99, and the server's
RSS <= 300 MB (sampled every 0.2 s, the peak is reported). Prints a table, PASS/MISS per goal and one
JSON line. The exit code is non-zero only when the benchmark could not run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import resource
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

HANDOFF = str(Path(sys.executable).with_name("handoff"))
PROTOCOL = "2025-06-18"
_URL = re.compile(r"serving MCP at (http://\S+/mcp)")
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}
P99_GOAL = 2.0
RSS_GOAL_MB = 300.0
ATTACK_SECONDS = 15.0  # an attack phase measures at least this long


@contextmanager
def server(directory: Path) -> Iterator[tuple[str, int]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
    env.update(HANDOFF_DATABASE_URL=f"sqlite:///{directory}/abuse.db", HANDOFF_LOG_LEVEL="WARNING")
    # Abandoned sessions are kept for the whole run (not closed after the default 60 s), so the
    # `sessions_held` phase measures 10,000 of them really open.
    env["HANDOFF_HTTP__UNUSED_SESSION_SECONDS"] = "900"
    log = (directory / "server.log").open("w")
    process = subprocess.Popen(
        [HANDOFF, "serve", "--port", "0"], stdout=subprocess.PIPE, stderr=log, env=env, text=True
    )
    assert process.stdout is not None
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("handoff serve did not start: " + (directory / "server.log").read_text()[-2000:])
            if match := _URL.search(process.stdout.readline()):
                url = match.group(1)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class NormalClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(timeout=60)
        self.headers = dict(HEADERS)
        self._ids = itertools.count(1)
        answer = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": "initialize", "params": INITIALIZE})
        assert "result" in answer, answer
        self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        self.call("register_session", {"session_key": "normal", "source_agent": "bench"})

    def _post(self, message: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(self.url, content=json.dumps(message), headers=self.headers)
        if "mcp-session-id" in response.headers:
            self.headers["mcp-session-id"] = response.headers["mcp-session-id"]
            self.headers["mcp-protocol-version"] = PROTOCOL
        for line in response.text.splitlines():
            if line.startswith("data:"):
                return dict(json.loads(line[5:]))
        return {} if response.status_code == 202 else {"error": response.text}

    def call(self, tool: str, arguments: dict[str, Any]) -> None:
        message = {"jsonrpc": "2.0", "id": next(self._ids), "method": "tools/call"}
        message["params"] = {"name": tool, "arguments": arguments}
        answer = self._post(message)
        if "result" not in answer or answer["result"].get("isError"):
            raise RuntimeError(f"{tool} failed: {str(answer)[:300]}")

    def latencies(self, calls: int, until: Callable[[], bool] | None = None) -> list[float]:
        """`calls` appends (more, if `until` is given, until it says so), in ms each."""
        timings = []
        while len(timings) < calls or (until is not None and not until()):
            content = "".join(random.choices("abcdefghij ", k=200))
            started = time.perf_counter()
            self.call("update_context", {"session_key": "normal", "context_type": "message", "content": content})
            timings.append((time.perf_counter() - started) * 1000)
        return timings


class Attack:
    """Threads doing one abuse until `stop()`; `done` is set when a finite attack has finished."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.done = threading.Event()
        self.threads: list[threading.Thread] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def start(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)


def _connect(address: tuple[str, int], source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(address)
    sock.setblocking(False)
    return sock


def hold_sockets(attack: Attack, address: tuple[str, int], count: int, source: str, trickle: bytes | None) -> None:
    """Keep `count` connections open; with `trickle`, send it one byte a second on each."""
    opened: dict[socket.socket, int] = {}
    reopened = 0
    try:
        while not attack.stopping.is_set():
            while len(opened) < count:
                try:
                    opened[_connect(address, source)] = 0
                except OSError:
                    break
            poller = select.poll()  # not select(): descriptors here go past 1024
            by_fd = {sock.fileno(): sock for sock in opened}
            for fd in by_fd:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll(1000):  # the server closed it (or answered): open another
                sock = by_fd[fd]
                with suppress(OSError):
                    sock.recv(65536)
                sock.close()
                opened.pop(sock, None)
                reopened += 1
            if trickle is not None:
                for sock, sent in list(opened.items()):
                    try:
                        sock.send(trickle[sent % len(trickle) : sent % len(trickle) + 1])
                        opened[sock] = sent + 1
                    except OSError:
                        sock.close()
                        opened.pop(sock, None)
    finally:
        for sock in opened:
            sock.close()
        attack.counts["closed_by_server"] = reopened


def abandon_sessions(attack: Attack, url: str, sources: list[str], per_source: int) -> None:
    opened = refused = 0
    for source in sources:
        with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=60) as http:
            for _ in range(per_source):
                if attack.stopping.is_set():
                    return
                body = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INITIALIZE}
                status = http.post(url, json=body, headers=HEADERS).status_code
                opened += status == 200
                refused += status == 429
    with attack.lock:  # two attacker threads add their counts
        attack.counts["sessions_opened"] = attack.counts.get("sessions_opened", 0) + opened
        attack.counts["refused_429"] = attack.counts.get("refused_429", 0) + refused


def sample_rss(pid: int, stop: threading.Event, peak: list[float]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_mb(pid))
        stop.wait(0.2)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description="a normal client's latency under abuse")
    parser.add_argument("--quick", action="store_true", help="smaller attacks and fewer calls (CI smoke)")
    parser.add_argument("--calls", type=int, default=None, help="measured calls per phase (default 400; quick 100)")
    args = parser.parse_args()
    calls = args.calls or (100 if args.quick else 400)
    idle, sessions_per, addresses, slow = (200, 20, 10, 100) if args.quick else (1000, 100, 100, 500)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this process holds the attackers' sockets

    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp)) as (url, pid):
        host, port = url.removeprefix("http://").removesuffix("/mcp").rsplit(":", 1)
        address = (host, int(port))
        normal = NormalClient(url)
        normal.latencies(50)  # warm-up

        def phase(name: str, attack: Attack | None, wait_for_done: bool = False) -> None:
            stop, peak = threading.Event(), [rss_mb(pid)]
            sampler = threading.Thread(target=sample_rss, args=(pid, stop, peak), daemon=True)
            sampler.start()
            if attack is not None and not wait_for_done:
                time.sleep(2)  # let the attack build up
            until: Callable[[], bool] | None = None
            if attack is not None and wait_for_done:
                until = attack.done.is_set
            elif attack is not None:  # past the header timeout (10 s), so the server's closing is measured too
                ends = time.monotonic() + ATTACK_SECONDS
                until = lambda: time.monotonic() > ends  # noqa: E731
            timings = normal.latencies(calls, until)
            if attack is not None:
                attack.stop()
            stop.set()
            sampler.join()
            rows[name] = {
                "calls": len(timings),
                "p50": statistics.median(timings),
                "p99": percentile(timings, 0.99),
                "rss_mb": peak[0],
                **(attack.counts if attack is not None else {}),
            }

        phase("quiet", None)
        attack = Attack()
        attack.start(hold_sockets, attack, address, idle, "127.0.0.2", None)
        phase("idle_sockets", attack)
        attack = Attack()
        sources = [f"127.0.{1 + n // 250}.{1 + n % 250}" for n in range(addresses)]
        halves = [sources[0::2], sources[1::2]]  # two attacker threads
        for half in halves:
            attack.start(abandon_sessions, attack, url, half, sessions_per + 1)
        done = threading.Event()

        def both_done() -> None:
            for thread in attack.threads:
                thread.join()
            done.set()

        threading.Thread(target=both_done, daemon=True).start()
        attack.done = done
        phase("sessions", attack, wait_for_done=True)
        phase("sessions_held", None)
        attack = Attack()
        attack.start(hold_sockets, attack, address, slow, "127.0.0.4", b"GET /healthz HTTP/1.1\r\nx-slow: aaaaaaaaaaaa")
        phase("slowloris", attack)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    quiet = rows["quiet"]["p99"]
    print(f"{'phase':14} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'p99 ratio':>10} {'RSS MB':>8}  attack")
    for name, row in rows.items():
        row["p99_ratio"] = row["p99"] / quiet
        extra = {k: v for k, v in row.items() if k not in {"calls", "p50", "p99", "rss_mb", "p99_ratio"}}
        print(
            f"{name:14} {row['calls']:>6} {row['p50']:>8.2f} {row['p99']:>8.2f} {row['p99_ratio']:>9.2f}x "
            f"{row['rss_mb']:>8.1f}  {extra or ''}"
        )
    for name, row in rows.items():
        if name == "quiet":
            continue
        ratio_ok = row["p99_ratio"] <= P99_GOAL
        print(f"{'PASS' if ratio_ok else 'MISS'}  {name} p99 {row['p99_ratio']:.2f}x quiet <= {P99_GOAL}x")
        rss_ok = row["rss_mb"] <= RSS_GOAL_MB
        print(f"{'PASS' if rss_ok else 'MISS'}  {name} server RSS {row['rss_mb']:.0f} MB <= {RSS_GOAL_MB:.0f} MB")
    print(json.dumps({"bench": "abuse", "quick": args.quick, "phases": rows}))


if __name__ == "__main__":
    main()
