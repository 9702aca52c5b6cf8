"""Per-call latency with a raw JSON-RPC client: no client SDK cost in the numbers, only the server's.

    .venv/bin/python bench/bench_raw.py [--quick] [--calls N] [--transport stdio|http|both]

Over HTTP it also measures what bearer-token and OAuth (JWT) authentication add to a request (`auth_cost`).

Two servers per transport, started as subprocesses the way clients start them: `handoff stdio`
(or `handoff serve --transport http --port 0`) on a fresh SQLite file, and bench/noop_server.py on
the same SDK. The client writes JSON-RPC by hand (stdio: one line per message; HTTP: one POST per
message on a kept-alive connection, answers read from the SSE body) and times each call from the
write to the parsed answer. Kinds are interleaved in a shuffled order each round, so machine noise
falls on all of them alike:

  noop               the no-op tool (the floor)
  update_200B        update_context, a 200-byte message, with an idempotency key
  register           register_session, a new key each call
  handoff_2000       request_handoff at token_budget 2000 on a session of 200 entries

Goals (issue 12): p50 of update and register <= 1.6x the floor's, handoff <= 3x, and each p99 <= 2x the
floor's p99 + 1 ms. Prints a table, one JSON line per transport, and PASS/MISS per goal.
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
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
HANDOFF = str(Path(sys.executable).with_name("handoff"))
PROTOCOL = "2025-06-18"
_URL = re.compile(r"serving MCP at (http://\S+/mcp)")
GOALS = {"update_200B": 1.6, "register": 1.6, "handoff_2000": 3.0}


class RawClient:
    """JSON-RPC by hand; `call` returns the `result` (raises on an error or an `isError` result)."""

    def __init__(self, send: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        self._send = send
        self._ids = itertools.count(1)

    def initialize(self) -> None:
        self.request(
            "initialize",
            {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
        )
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        answer = self._send({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params})
        if answer is None or "error" in answer:
            raise RuntimeError(f"{method} failed: {answer}")
        result: dict[str, Any] = answer["result"]
        return result

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = self.request("tools/call", {"name": tool, "arguments": arguments})
        if result.get("isError"):
            raise RuntimeError(f"{tool} refused: {result['content'][0]['text'][:300]}")
        return result


@contextmanager
def stdio_client(command: list[str], env: dict[str, str]) -> Iterator[RawClient]:
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    def send(message: dict[str, Any]) -> dict[str, Any] | None:
        stdin.write(json.dumps(message).encode() + b"\n")
        stdin.flush()
        if "id" not in message:
            return None
        while True:
            answer: dict[str, Any] = json.loads(stdout.readline())
            if answer.get("id") == message["id"]:
                return answer  # anything else is a notification (a log message)

    try:
        client = RawClient(send)
        client.initialize()
        yield client
    finally:
        stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stdout.close()


@contextmanager
def http_client(command: list[str], env: dict[str, str], token: str | None = None) -> Iterator[RawClient]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    assert process.stdout is not None
    url = None
    deadline = time.monotonic() + 60
    while url is None:
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"{command} did not start")
        if match := _URL.search(process.stdout.readline()):
            url = match.group(1)
    http = httpx.Client(timeout=60)
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"

    def send(message: dict[str, Any]) -> dict[str, Any] | None:
        response = http.post(url, content=json.dumps(message), headers=headers)
        if "mcp-session-id" in response.headers:
            headers["Mcp-Session-Id"] = response.headers["mcp-session-id"]
            headers["MCP-Protocol-Version"] = PROTOCOL
        if "id" not in message:
            return None
        for line in response.text.splitlines():
            if line.startswith("data:"):
                answer: dict[str, Any] = json.loads(line[5:])
                if answer.get("id") == message["id"]:
                    return answer
        return json.loads(response.text) if response.text.startswith("{") else None

    try:
        client = RawClient(send)
        client.initialize()
        yield client
    finally:
        http.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def seed(handoff: RawClient, entries: int) -> None:
    handoff.call("register_session", {"session_key": "bench", "source_agent": "bench"})
    rng = random.Random(3)
    for i in range(entries):
        kind = ("message", "tool_call", "file")[i % 3]
        text = " ".join(rng.choice(["fix", "the", "login", "test", "fails", "cache", "retry"]) for _ in range(30))
        handoff.call(
            "update_context",
            {"session_key": "bench", "context_type": kind, "content": f"{i}: {text}", "agent": "bench"},
        )


def measure(handoff: RawClient, noop: RawClient, calls: int) -> dict[str, list[float]]:
    counter = itertools.count()
    kinds: dict[str, Callable[[], Any]] = {
        "noop": lambda: noop.call("noop", {}),
        "update_200B": lambda: handoff.call(
            "update_context",
            {
                "session_key": "bench",
                "context_type": "message",
                "content": "x" * 200,
                # Named: the session is handed off between calls, and then an unnamed write is refused.
                "agent": "bench",
                "idempotency_key": f"k{next(counter)}",
            },
        ),
        "register": lambda: handoff.call("register_session", {"session_key": f"r{next(counter)}", "source_agent": "a"}),
        "handoff_2000": lambda: handoff.call(
            "request_handoff", {"session_key": "bench", "target_agent": "b", "token_budget": 2000}
        ),
    }
    for call in kinds.values():  # warm-up: first-call costs (imports, caches) are not steady state
        for _ in range(20):
            call()
    samples: dict[str, list[float]] = {name: [] for name in kinds}
    rng = random.Random(11)
    order = list(kinds)
    for _ in range(calls):
        rng.shuffle(order)
        for name in order:
            started = time.perf_counter()
            kinds[name]()
            samples[name].append((time.perf_counter() - started) * 1000)
    return samples


def durable_append_ms(directory: str, calls: int) -> float:
    """p50 of the bare durable write an append needs: SQLite WAL, synchronous=FULL, BEGIN IMMEDIATE,
    a counter bump and an insert, on the same file system. The floor plus this is the physical limit."""
    import sqlite3

    db = sqlite3.connect(f"{directory}/floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE s (id INTEGER PRIMARY KEY, n INTEGER)")
    db.execute("CREATE TABLE e (s INTEGER, n INTEGER, body TEXT, UNIQUE (s, n))")
    db.execute("INSERT INTO s VALUES (1, 0)")
    samples = []
    for i in range(max(calls, 200)):
        started = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE s SET n = n + 1 WHERE id = 1")
        db.execute("INSERT INTO e VALUES (1, ?, ?)", (i, "x" * 200))
        db.execute("COMMIT")
        samples.append((time.perf_counter() - started) * 1000)
    db.close()
    return statistics.median(samples)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(transport: str, calls: int, entries: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
        env.update(HANDOFF_DATABASE_URL=f"sqlite:///{tmp}/bench.db", HANDOFF_LOG_LEVEL="WARNING")
        if transport == "stdio":
            handoff_cmd, noop_cmd, connect = (
                [HANDOFF, "stdio"],
                [sys.executable, str(BENCH / "noop_server.py"), "--stdio"],
                stdio_client,
            )
        else:
            handoff_cmd = [HANDOFF, "serve", "--port", "0"]
            noop_cmd = [sys.executable, str(BENCH / "noop_server.py"), "--port", "0"]
            connect = http_client
        with connect(handoff_cmd, env) as handoff, connect(noop_cmd, env) as noop:
            seed(handoff, entries)
            samples = measure(handoff, noop, calls)
        durable = durable_append_ms(tmp, calls)
    result: dict[str, Any] = {"transport": transport, "calls": calls, "durable_append_p50": round(durable, 3)}
    for name, values in samples.items():
        result[name] = {"p50": round(statistics.median(values), 3), "p99": round(percentile(values, 0.99), 3)}
    return result


@contextmanager
def local_issuer(resource: str) -> Iterator[tuple[str, str]]:
    """A minimal authorization server on loopback: RFC 8414 metadata and a JWKS with one RSA key, and
    an access token it signed for `resource`. Which issuer signed does not change what checking a
    token costs the server (tests/e2e/test_oauth.py runs against a real one)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.get_algorithm_by_name("RS256").to_jwk(key.public_key())), "kid": "bench", "use": "sig"}
    documents: dict[str, Any] = {}

    class Documents(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(documents[self.path]).encode() if self.path in documents else b"{}"
            self.send_response(200 if self.path in documents else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Documents)
    issuer = f"http://127.0.0.1:{server.server_address[1]}"
    documents["/.well-known/oauth-authorization-server"] = {"issuer": issuer, "jwks_uri": f"{issuer}/jwks"}
    documents["/jwks"] = {"keys": [jwk]}
    claims = {"iss": issuer, "aud": resource, "sub": "bench", "exp": int(time.time()) + 3600, "scope": "handoff"}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench", "typ": "at+jwt"})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer, token
    finally:
        server.shutdown()
        server.server_close()


def auth_cost(calls: int) -> dict[str, float]:
    """p50 of the same read (`get_session`) on three servers over one database: one without
    authentication, one with HANDOFF_AUTH__MODE=tokens and one with oauth (a JWT access token, the
    issuer's keys cached after the warm-up), interleaved: the differences are what checking a bearer
    token costs a request (issue 10's goal: at most 0.2 ms)."""
    resource = "https://handoff.bench/mcp"
    with tempfile.TemporaryDirectory() as tmp, local_issuer(resource) as (issuer, jwt_token):
        env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
        env.update(HANDOFF_DATABASE_URL=f"sqlite:///{tmp}/auth.db", HANDOFF_LOG_LEVEL="WARNING")
        subprocess.run([HANDOFF, "migrate"], env=env, check=True, capture_output=True)
        created = subprocess.run(
            [HANDOFF, "tokens", "create", "--agent", "bench", "--json"], env=env, check=True, capture_output=True
        )
        token = json.loads(created.stdout)["token"]
        oauth_env = {
            **env,
            "HANDOFF_AUTH__MODE": "oauth",
            "HANDOFF_AUTH__OAUTH__ISSUER": issuer,
            "HANDOFF_AUTH__OAUTH__RESOURCE": resource,
            "HANDOFF_AUTH__OAUTH__REQUIRED_SCOPES": '["handoff"]',
        }
        command = [HANDOFF, "serve", "--port", "0"]
        with (
            http_client(command, env) as open_server,
            http_client(command, {**env, "HANDOFF_AUTH__MODE": "tokens"}, token) as guarded,
            http_client(command, oauth_env, jwt_token) as oauth,
        ):
            open_server.call("register_session", {"session_key": "auth", "source_agent": "bench"})
            read = {"session_key": "auth"}
            clients = {"open": open_server, "tokens": guarded, "oauth": oauth}
            for client in clients.values():
                for _ in range(20):
                    client.call("get_session", read)
            times: dict[str, list[float]] = {name: [] for name in clients}
            for _ in range(calls):
                for name, client in clients.items():
                    started = time.perf_counter()
                    client.call("get_session", read)
                    times[name].append((time.perf_counter() - started) * 1000)
        check = oauth_check_ms(issuer, resource, jwt_token, calls * 10)
    result = {f"{name}_p50": round(statistics.median(values), 3) for name, values in times.items()}
    return {**result, "oauth_check_p50": round(check, 4)}


def oauth_check_ms(issuer: str, resource: str, token: str, calls: int) -> float:
    """p50 of the oauth check alone, in process, keys cached: what BearerAuth adds in oauth mode,
    free of the scheduling noise that a whole HTTP request carries on a shared machine."""
    import anyio

    from handoff.config import OAuthSettings
    from handoff.http.oauth import OAuthConfig, access_tokens

    config = OAuthConfig.of(OAuthSettings(issuer=issuer, resource=resource, required_scopes=["handoff"]))
    tokens = access_tokens(config, max_agent_length=128)

    async def measure() -> list[float]:
        assert await tokens.authenticate(token) == "bench"  # warms the key cache
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            await tokens.authenticate(token)
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    return statistics.median(anyio.run(measure))


def report(result: dict[str, Any]) -> list[str]:
    floor = result["noop"]
    lines = [f"{result['transport']}: {'kind':<14}{'p50 ms':>9}{'p99 ms':>9}{'p50 ratio':>11}"]
    verdicts = []
    for name in ("noop", *GOALS):
        row = result[name]
        ratio = row["p50"] / floor["p50"]
        lines.append(f"{result['transport']}: {name:<14}{row['p50']:>9.3f}{row['p99']:>9.3f}{ratio:>10.2f}x")
        if name in GOALS:
            ok = ratio <= GOALS[name]
            verdicts.append(
                f"{'PASS' if ok else 'MISS'}  {result['transport']} {name} p50 {ratio:.2f}x <= {GOALS[name]}x"
            )
            limit = 2 * floor["p99"] + 1
            ok = row["p99"] <= limit
            verdicts.append(
                f"{'PASS' if ok else 'MISS'}  {result['transport']} {name} p99 {row['p99']:.2f} ms <= {limit:.2f} ms"
            )
    limit = (floor["p50"] + result["durable_append_p50"]) / floor["p50"]
    lines.append(
        f"{result['transport']}: a bare durable SQLite append takes {result['durable_append_p50']:.3f} ms here, "
        f"so no durable update_context can beat {limit:.2f}x the floor on this disk"
    )
    return lines + verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description="raw JSON-RPC per-call latency against the no-op server")
    parser.add_argument("--quick", action="store_true", help="a small run for CI smoke (seconds)")
    parser.add_argument("--calls", type=int, default=None, help="measured calls per kind (default 400; quick 40)")
    parser.add_argument("--entries", type=int, default=200, help="entries in the handed-off session")
    parser.add_argument("--transport", choices=["stdio", "http", "both"], default="both")
    args = parser.parse_args()
    calls = args.calls or (40 if args.quick else 400)
    for transport in ("stdio", "http") if args.transport == "both" else (args.transport,):
        result = run(transport, calls, args.entries)
        print("\n".join(report(result)))
        print(json.dumps(result))
    if args.transport != "stdio":
        cost = auth_cost(calls)
        print(
            f"http: get_session p50 {cost['open_p50']:.3f} ms open, {cost['tokens_p50']:.3f} ms with a bearer "
            f"token, {cost['oauth_p50']:.3f} ms with an OAuth JWT"
        )
        for mode in ("tokens", "oauth"):
            added = cost[f"{mode}_p50"] - cost["open_p50"]
            verdict = "PASS" if added <= 0.2 else "MISS"
            print(f"{verdict}  http authentication ({mode}) adds {added:.3f} ms p50 <= 0.2 ms")
        check = cost["oauth_check_p50"]
        print(f"{'PASS' if check <= 0.2 else 'MISS'}  the oauth token check alone takes {check:.4f} ms p50 <= 0.2 ms")
        print(json.dumps({"auth": cost}))


if __name__ == "__main__":
    main()
