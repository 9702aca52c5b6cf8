"""What resumable HTTP streams cost per call, and how fast a dropped answer is replayed.

    .venv/bin/python bench/bench_streams.py [--quick] [--calls N] [--postgres URL]

Two `handoff serve` HTTP servers on the same backend (SQLite: a file each; PostgreSQL: a schema
each): one with resumable streams (the default), one with HANDOFF_STREAMS__RESUMABLE=false. A raw
client on protocol 2025-11-25 (the one that gets priming events; a call's answer is one event
write) times each call from the POST to the parsed answer, the two servers
interleaved in a shuffled order each round so machine noise falls on both alike:

  get_session      a read (the event writes are all the work the store adds)
  update_200B      an append of 200 bytes (a write transaction of its own besides the events)

Then `replay`: a call whose stream is dropped after the priming event, and the time from the
reconnect (GET with Last-Event-ID) to the answer. Prints a table, the on/off ratios and one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

HANDOFF = os.path.join(os.path.dirname(sys.executable), "handoff")
PROTOCOL = "2025-11-25"
_URL = re.compile(r"serving MCP at (http://\S+/mcp)")


class Client:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(timeout=60)
        self.headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        self.ids = itertools.count(1)

    def post(self, message: dict[str, Any]) -> dict[str, Any] | None:
        response = self.http.post(self.url, content=json.dumps(message), headers=self.headers)
        if "mcp-session-id" in response.headers:
            self.headers["Mcp-Session-Id"] = response.headers["mcp-session-id"]
            self.headers["MCP-Protocol-Version"] = PROTOCOL
        for line in response.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                answer: dict[str, Any] = json.loads(line[5:])
                if answer.get("id") == message.get("id"):
                    return answer
        return None

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": "tools/call"}
        answer = self.post({**body, "params": {"name": tool, "arguments": arguments}})
        if answer is None or "error" in answer or answer["result"].get("isError"):
            raise RuntimeError(f"{tool} failed: {answer}")
        return answer

    def initialize(self) -> None:
        self.post(
            {
                "jsonrpc": "2.0",
                "id": next(self.ids),
                "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL,
                    "capabilities": {},
                    "clientInfo": {"name": "b", "version": "1"},
                },
            }
        )
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def replay_ms(self) -> float:
        """A call whose stream is dropped after its first (priming) event; ms from the reconnect to the answer."""
        request_id = next(self.ids)
        body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call"}
        body["params"] = {"name": "get_session", "arguments": {"session_key": "bench"}}
        last_id = None
        with self.http.stream("POST", self.url, content=json.dumps(body), headers=self.headers) as response:
            for line in response.iter_lines():
                if line.startswith("id:"):
                    last_id = line[3:].strip()
                    break
        assert last_id is not None, "no priming event: is the server resumable?"
        headers = {k: v for k, v in self.headers.items() if k != "Content-Type"}
        headers.update({"Accept": "text/event-stream", "Last-Event-ID": last_id})
        started = time.perf_counter()
        while True:
            with self.http.stream("GET", self.url, headers=headers) as response:
                for line in response.iter_lines():
                    if line.startswith("id:"):
                        headers["Last-Event-ID"] = line[3:].strip()
                    answered = line.startswith("data:") and line[5:].strip() and json.loads(line[5:])
                    if answered and answered.get("id") == request_id:
                        return (time.perf_counter() - started) * 1000

    def close(self) -> None:
        self.http.close()


@contextmanager
def server(env: dict[str, str]) -> Iterator[Client]:
    command = [HANDOFF, "serve", "--transport", "http", "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    assert process.stdout is not None
    url = None
    deadline = time.monotonic() + 60
    while url is None:
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("handoff serve did not start")
        if match := _URL.search(process.stdout.readline()):
            url = match.group(1)
    client = Client(url)
    try:
        client.initialize()
        client.call("register_session", {"session_key": "bench", "source_agent": "bench"})
        yield client
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(on: Client, off: Client, calls: int) -> dict[str, list[float]]:
    kinds = {
        "get_session": ("get_session", lambda i: {"session_key": "bench"}),
        "update_200B": (
            "update_context",
            lambda i: {"session_key": "bench", "context_type": "message", "content": f"{i:06d} " + "x" * 193},
        ),
    }
    samples: dict[str, list[float]] = {f"{k}/{s}": [] for k in kinds for s in ("on", "off")}
    rng = random.Random(5)
    for client in (on, off):  # warm-up: connections, caches, first statements
        for tool, args in kinds.values():
            for i in range(5):
                client.call(tool, args(-i - 1))
    order = [(k, s) for k in kinds for s in ("on", "off")]
    for i in range(calls):
        rng.shuffle(order)
        for kind, side in order:
            tool, args = kinds[kind]
            client = on if side == "on" else off
            started = time.perf_counter()
            client.call(tool, args(i if side == "on" else calls + i))
            samples[f"{kind}/{side}"].append((time.perf_counter() - started) * 1000)
    return samples


def environment(database: str, schema: str | None, resumable: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
    env.update(HANDOFF_DATABASE_URL=database, HANDOFF_LOG_LEVEL="WARNING")
    env["HANDOFF_STREAMS__RESUMABLE"] = "true" if resumable else "false"
    if schema is not None:
        env["HANDOFF_DB__SCHEMA_NAME"] = schema
    return env


def run(calls: int, replays: int, postgres: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        if postgres:
            tag = uuid.uuid4().hex[:8]
            on_env = environment(postgres, f"bench_streams_on_{tag}", True)
            off_env = environment(postgres, f"bench_streams_off_{tag}", False)
        else:
            on_env = environment(f"sqlite:///{tmp}/on.db", None, True)
            off_env = environment(f"sqlite:///{tmp}/off.db", None, False)
        with server(on_env) as on, server(off_env) as off:
            samples = measure(on, off, calls)
            replay = [on.replay_ms() for _ in range(replays)]
        if postgres:
            drop_schemas(postgres, [on_env["HANDOFF_DB__SCHEMA_NAME"], off_env["HANDOFF_DB__SCHEMA_NAME"]])
    result: dict[str, Any] = {"backend": "postgres" if postgres else "sqlite", "calls": calls}
    for name, values in samples.items():
        result[name] = {"p50": round(statistics.median(values), 3), "p99": round(percentile(values, 0.99), 3)}
    for kind in ("get_session", "update_200B"):
        on_, off_ = result[f"{kind}/on"], result[f"{kind}/off"]
        result[f"{kind}/ratio"] = {q: round(on_[q] / off_[q], 2) for q in ("p50", "p99")}
    result["replay"] = {"p50": round(statistics.median(replay), 3), "p99": round(percentile(replay, 0.99), 3)}
    return result


def drop_schemas(url: str, schemas: list[str]) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            for schema in schemas:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run for CI smoke (seconds)")
    parser.add_argument("--calls", type=int, default=None, help="measured calls per kind and server (default 300)")
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL: measure there instead of on SQLite")
    args = parser.parse_args()
    calls = args.calls or (30 if args.quick else 300)
    result = run(calls, replays=10 if args.quick else 50, postgres=args.postgres)
    print(f"resumable streams on {result['backend']}, {calls} calls per kind (ms; on = events stored)")
    print(f"{'kind':<14}{'on p50':>9}{'off p50':>9}{'ratio':>7}{'on p99':>9}{'off p99':>9}{'ratio':>7}")
    for kind in ("get_session", "update_200B"):
        on, off, ratio = result[f"{kind}/on"], result[f"{kind}/off"], result[f"{kind}/ratio"]
        print(
            f"{kind:<14}{on['p50']:>9.2f}{off['p50']:>9.2f}{ratio['p50']:>7.2f}"
            f"{on['p99']:>9.2f}{off['p99']:>9.2f}{ratio['p99']:>7.2f}"
        )
    print(f"replay after a drop: p50 {result['replay']['p50']:.2f} ms, p99 {result['replay']['p99']:.2f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
