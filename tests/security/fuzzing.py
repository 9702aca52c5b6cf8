"""mcp-fuzzer against the real server, for a bounded number of runs, failing on any server fault.

    python -m tests.security.fuzzing [--transport stdio|http|both] [--runs N] [--seed S]

Each campaign (a fuzzer mode and phase) gets its own `handoff` process on a fresh SQLite file. The
fuzzer's own verdicts are not enough for us: it counts a JSON-RPC internal error (-32603) and a tool
result with `isError` as "rejected, handled correctly". So we watch the server ourselves:

- over stdio, every line passes through `stdio_tap.py`, which notes each request and each answer;
- over HTTP, the server logs one `request` line per call with its outcome (INFO level).

A fault is: an internal error answered to the client (tool error `internal`, JSON-RPC -32603, or an
unexpected error code), a line on stdout that is not JSON, a request never answered, an error or
critical log line, text on stderr that is not our JSON log (a raw traceback), the server exiting or
being restarted, a fuzzer run that overruns its time limit, or the server not answering afterwards.
A refusal (`invalid_input`, `not_found`, -32602, …) is the server doing its job, counted not failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.e2e.servers import HANDOFF, http_server, server_env

TAP = Path(__file__).with_name("stdio_tap.py")
# JSON-RPC codes that mean "the request was refused": parse error, invalid request, no such method,
# invalid params. -32603 (internal error) is the server failing, never a refusal.
REFUSAL_RPC_CODES = frozenset({-32700, -32600, -32601, -32602})
FAULT_TOOL_CODES = frozenset({"internal", "unavailable", "unstructured"})
FAULT_LOG_LEVELS = frozenset({"error", "critical"})


@dataclass(frozen=True)
class Campaign:
    mode: str  # tools | protocol | resources | prompts (the fuzzer's --mode)
    phase: str  # realistic | aggressive

    @property
    def name(self) -> str:
        return f"{self.mode}/{self.phase}"

    def arguments(self, runs: int) -> list[str]:
        if self.mode == "tools":
            return ["--mode", "tools", "--phase", self.phase, "--runs", str(runs)]
        # Protocol, resources and prompts send `runs_per_type` messages of each kind; a third of the
        # tool runs keeps their wall time in line with the tool campaigns.
        per_type = str(max(2, runs // 3))
        return ["--mode", self.mode, "--protocol-phase", self.phase, "--runs-per-type", per_type]


CAMPAIGNS = (
    Campaign("tools", "aggressive"),
    Campaign("tools", "realistic"),
    Campaign("protocol", "aggressive"),
    Campaign("protocol", "realistic"),
    Campaign("resources", "aggressive"),
    Campaign("prompts", "aggressive"),
)


@dataclass
class Tally:
    calls: int = 0
    refusals: int = 0
    faults: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, other: Tally) -> None:
        self.calls += other.calls
        self.refusals += other.refusals
        self.faults.extend(other.faults)
        self.seconds += other.seconds

    def summary(self, label: str) -> str:
        return (
            f"fuzz {label}: {self.calls} calls, {self.refusals} refusals, {len(self.faults)} faults "
            f"in {self.seconds:.0f}s"
        )


# ---------------------------------------------------------------------------------------------
# Reading what happened


def faults_in_server_log(lines: Iterable[str]) -> list[str]:
    """Error lines and raw (non-JSON) text in the server's stderr; our logs are one JSON object a line."""
    faults = []
    for line in lines:
        text = line.strip()
        if not text:
            continue
        try:
            event = json.loads(text)
        except ValueError:
            faults.append(f"raw text on the server's stderr: {text[:200]}")
            continue
        if not isinstance(event, dict):
            faults.append(f"raw text on the server's stderr: {text[:200]}")
        elif str(event.get("level", "")).lower() in FAULT_LOG_LEVELS:
            faults.append(f"server logged {event.get('level')}: {event.get('event')} {_context(event)}")
    return faults


def _context(event: dict[str, object]) -> str:
    shown = {k: event[k] for k in ("method", "tool", "uri", "handler") if k in event}
    if isinstance(event.get("exception"), str):  # the traceback's last line names the exception
        shown["exception"] = str(event["exception"]).strip().splitlines()[-1]
    return json.dumps(shown, ensure_ascii=False, default=str)[:400]


def tally_tap_record(events: list[dict[str, object]]) -> Tally:
    """What crossed the stdio pipe: answers and refusals counted, faults named."""
    tally = Tally()
    asked: Counter[str] = Counter()
    methods: dict[str, str] = {}  # the last request sent under each id, to name what was asked
    answered: Counter[str] = Counter()
    starts = 0
    for event in events:
        kind = event["kind"]
        if kind == "start":
            starts += 1
        elif kind == "request":
            asked[str(event["id"])] += 1
            methods[str(event["id"])] = str(event["method"])
        elif kind == "non_json":
            tally.faults.append(f"non-JSON line on stdout: {event['line']!r}")
        elif kind == "exit" and event["code"] != 0:
            tally.faults.append(f"server exited with status {event['code']}")
        elif kind == "response":
            answered[str(event["id"])] += 1
            tally.calls += 1
            asked_for = methods.get(str(event["id"]), "?")
            rpc_error, tool_error = event.get("rpc_error"), event.get("tool_error")
            if rpc_error is not None:
                if rpc_error in REFUSAL_RPC_CODES:
                    tally.refusals += 1
                else:
                    tally.faults.append(f"{asked_for}: JSON-RPC error {rpc_error}: {event.get('message')}")
            elif tool_error is not None:
                if tool_error in FAULT_TOOL_CODES:
                    tally.faults.append(f"{asked_for}: answered {tool_error}")
                else:
                    tally.refusals += 1
    if starts > 1:
        tally.faults.append(f"the fuzzer had to restart the server {starts - 1} time(s)")
    for request_id, count in (asked - answered).items():
        tally.faults.append(f"{count} request(s) {methods[request_id]} id={request_id} never answered")
    return tally


def tally_request_log(lines: Iterable[str]) -> Tally:
    """The HTTP server's per-call `request` log lines (outcome `ok` or `error <code>`)."""
    tally = Tally()
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # raw text is reported by faults_in_server_log
        if not isinstance(event, dict) or event.get("event") != "request":
            continue
        tally.calls += 1
        outcome = str(event.get("outcome", ""))
        if outcome.startswith("error "):
            code = outcome.removeprefix("error ")
            if code in FAULT_TOOL_CODES:
                tally.faults.append(f"{event.get('method')} {event.get('tool') or event.get('uri') or ''}: {code}")
            else:
                tally.refusals += 1
    return tally


# ---------------------------------------------------------------------------------------------
# Running


def _fuzzer(arguments: list[str], env: dict[str, str], workdir: Path, limit: float) -> tuple[int | None, str]:
    """Run mcp-fuzzer in its own process group; (exit status or None if it overran `limit`, output tail)."""
    command = [sys.executable, "-m", "mcp_fuzzer", *arguments]
    command += ["--no-corpus", "--output-dir", str(workdir / "reports"), "--fs-root", str(workdir / "fs")]
    with (workdir / "fuzzer.out").open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir, start_new_session=True
        )
        try:
            status: int | None = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the group: the fuzzer and the server it started
            process.wait(timeout=10)
            status = None
    tail = (workdir / "fuzzer.out").read_text(errors="replace")[-2000:]
    return status, tail


def _fuzzer_crashes(workdir: Path) -> int:
    """Crashes the fuzzer itself saw (a server process that died under it), from its JSON report."""
    crashes = 0
    for report in (workdir / "reports").rglob("*fuzzing_results.json"):
        data = json.loads(report.read_text()).get("data", {})
        for item in [*data.get("tools_tested", []), *data.get("protocol_types_tested", [])]:
            outcomes = item.get("outcomes", {}) if isinstance(item, dict) else {}
            crashes += int(outcomes.get("crashed", 0) or 0)
    return crashes


def _server_env(workdir: Path) -> dict[str, str]:
    roots = workdir / "roots"
    roots.mkdir(exist_ok=True)
    (roots / "example.py").write_text("import os\n\n\ndef greet(name):\n    return f'hello {name}'\n")
    # INFO: the HTTP server's per-call `request` lines are how we see each outcome there.
    return server_env(
        f"sqlite:///{workdir / 'handoff.db'}", HANDOFF_LOG_LEVEL="INFO", HANDOFF_ANALYSIS_ROOTS=str(roots)
    )


def fuzz_stdio(campaign: Campaign, runs: int, seed: int, limit: float) -> Tally:
    with tempfile.TemporaryDirectory(prefix="handoff-fuzz-") as tmp:
        workdir = Path(tmp)
        record, stderr = workdir / "tap.jsonl", workdir / "server.log"
        endpoint = shlex.join([sys.executable, str(TAP), str(record), str(stderr), "--", HANDOFF, "stdio"])
        arguments = [*campaign.arguments(runs), "--seed", str(seed), "--protocol", "stdio", "--endpoint", endpoint]
        started = time.monotonic()
        status, tail = _fuzzer([*arguments, "--timeout", "20"], _server_env(workdir), workdir, limit)
        events = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
        tally = tally_tap_record(events)
        tally.seconds = time.monotonic() - started
        server_log = stderr.read_text(errors="replace").splitlines() if stderr.exists() else []
        tally.faults += faults_in_server_log(server_log)
        tally.faults += _run_faults(campaign, status, tail, _fuzzer_crashes(workdir), limit)
        if tally.calls == 0:
            tally.faults.append(f"no call reached the server; fuzzer output:\n{tail}")
        return _labelled(tally, f"stdio {campaign.name}")


def fuzz_http(campaign: Campaign, runs: int, seed: int, limit: float) -> Tally:
    with tempfile.TemporaryDirectory(prefix="handoff-fuzz-") as tmp:
        workdir = Path(tmp)
        env = _server_env(workdir)
        with http_server(env["HANDOFF_DATABASE_URL"], **_handoff_settings(env)) as server:
            arguments = [*campaign.arguments(runs), "--seed", str(seed), "--protocol", "http", "--endpoint", server.url]
            started = time.monotonic()
            status, tail = _fuzzer([*arguments, "--timeout", "20"], env, workdir, limit)
            tally = Tally(seconds=time.monotonic() - started)
            if server.process.poll() is not None:
                tally.faults.append(f"server exited with status {server.process.returncode}")
            else:
                tally.faults += _still_serving(server.base)
            log_lines = list(server.stderr_lines)
        tally.add(tally_request_log(log_lines))
        tally.faults += faults_in_server_log(log_lines)
        tally.faults += _run_faults(campaign, status, tail, _fuzzer_crashes(workdir), limit)
        if tally.calls == 0:
            tally.faults.append(f"no call reached the server; fuzzer output:\n{tail}")
        return _labelled(tally, f"http {campaign.name}")


def _handoff_settings(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("HANDOFF_") and k != "HANDOFF_DATABASE_URL"}


def _still_serving(base: str) -> list[str]:
    """After the fuzzing, the server must still answer promptly (no wedged event loop)."""
    try:
        response = httpx.get(f"{base}/healthz", timeout=10.0)
    except httpx.HTTPError as error:
        return [f"server stopped answering after the fuzzing: {error!r}"]
    return [] if response.status_code == 200 else [f"/healthz answered {response.status_code} after the fuzzing"]


def _run_faults(campaign: Campaign, status: int | None, tail: str, crashes: int, limit: float) -> list[str]:
    if status is None:
        return [f"{campaign.name} did not finish within {limit:.0f}s (a hang); fuzzer output:\n{tail}"]
    faults = [f"the fuzzer saw the server crash {crashes} time(s)"] if crashes else []
    if status != 0:
        faults.append(f"mcp-fuzzer exited with status {status}; output:\n{tail}")
    return faults


def _labelled(tally: Tally, label: str) -> Tally:
    tally.faults = [f"[{label}] {fault}" for fault in tally.faults]
    print(tally.summary(label), flush=True)
    return tally


def run(transports: list[str], runs: int, seed: int, limit: float) -> Tally:
    total = Tally()
    for transport in transports:
        fuzz = fuzz_stdio if transport == "stdio" else fuzz_http
        for campaign in CAMPAIGNS:
            total.add(fuzz(campaign, runs, seed, limit))
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", choices=["stdio", "http", "both"], default="both")
    parser.add_argument("--runs", type=int, default=10, help="fuzzer runs per tool (a third of it per protocol type)")
    parser.add_argument("--seed", type=int, default=None, help="default: a new one each run, printed")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds one campaign may take before it is a hang")
    options = parser.parse_args(argv)
    seed = options.seed if options.seed is not None else int(time.time()) % 1_000_000
    transports = ["stdio", "http"] if options.transport == "both" else [options.transport]
    total = run(transports, options.runs, seed, options.limit)
    for fault in total.faults:
        print(f"FAULT {fault}", file=sys.stderr)
    print(total.summary(f"total (seed {seed}, --runs {options.runs})"), flush=True)
    return 1 if total.faults else 0


if __name__ == "__main__":
    sys.exit(main())
