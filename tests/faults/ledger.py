"""What the clients sent and what the server acknowledged, and the invariant every fault test ends with.

Every append carries an idempotency key (as a well-behaved client's does), so after a fault the
clients can retry what was left unanswered and each logical append lands exactly once. The final
check reads the whole session back and compares it with this ledger.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.client import Client


@dataclass
class Attempt:
    """One logical append: the same content and key however often it is sent."""

    key: str
    writer: int
    content: str
    context_type: str
    agent: str
    receipt: dict[str, Any] | None = None
    sends: int = 0

    @property
    def metadata(self) -> dict[str, Any]:
        return {"attempt": self.key, "writer": self.writer}

    def arguments(self, session_key: str) -> dict[str, Any]:
        return {
            "session_key": session_key,
            "context_type": self.context_type,
            "content": self.content,
            "metadata": self.metadata,
            "agent": self.agent,
            "idempotency_key": self.key,
        }


@dataclass
class Failure:
    """A call that did not succeed: the code the server gave (or how the transport failed) and when."""

    code: str
    message: str
    started: float
    elapsed: float


@dataclass
class Ledger:
    session_key: str
    attempts: dict[str, Attempt] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    acks: list[float] = field(default_factory=list)  # monotonic times of acknowledged appends
    _changed: anyio.Event = field(default_factory=anyio.Event)

    def new_attempt(self, writer: int, agent: str) -> Attempt:
        n = sum(1 for a in self.attempts.values() if a.writer == writer)
        key = f"w{writer}-{n}"
        # Sizes and scripts differ per entry, so a mixed-up or truncated row cannot compare equal by accident.
        content = f"writer {writer} entry {n} · данные · 数据 " + "x" * ((writer * 53 + n * 17) % 900)
        attempt = Attempt(key, writer, content, "message" if n % 2 else "tool_call", agent)
        self.attempts[key] = attempt
        return attempt

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def send(self, client: Client, attempt: Attempt, *, hang_limit: float) -> bool:
        """Send (or resend) one append; record the receipt or the failure. True when acknowledged."""
        attempt.sends += 1
        started = time.monotonic()
        try:
            with anyio.fail_after(hang_limit):
                result = await client.call_tool("update_context", attempt.arguments(self.session_key))
        except TimeoutError:
            self.failures.append(
                Failure("hang", f"no answer within {hang_limit}s", started, time.monotonic() - started)
            )
            self._notify()
            return False
        except Exception as exc:  # the transport failed: record it, the test asserts there are none
            self.failures.append(
                Failure(f"transport:{type(exc).__name__}", str(exc), started, time.monotonic() - started)
            )
            self._notify()
            return False
        elapsed = time.monotonic() - started
        if result.is_error:
            text = result.content[0].text if result.content else ""
            try:
                error = json.loads(text)["error"]
                code, message = str(error["code"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                code, message = "unparsed", text
            self.failures.append(Failure(code, message, started, elapsed))
            self._notify()
            return False
        assert result.structured_content is not None
        receipt = dict(result.structured_content["entry"])
        if attempt.receipt is not None:
            # A resend of an acknowledged append must replay the same entry.
            assert receipt["sequence_number"] == attempt.receipt["sequence_number"], (attempt.key, receipt)
        attempt.receipt = receipt
        self.acks.append(time.monotonic())
        self._notify()
        return True

    async def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait (bounded) until `condition` holds; it is re-checked whenever a call finishes."""
        try:
            with anyio.fail_after(timeout):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None

    async def next_change(self) -> None:
        """Return once another call has finished (bound it with `anyio.fail_after`)."""
        await self._changed.wait()

    @property
    def acknowledged(self) -> list[Attempt]:
        return [a for a in self.attempts.values() if a.receipt is not None]

    @property
    def pending(self) -> list[Attempt]:
        return [a for a in self.attempts.values() if a.receipt is None]

    def failures_since(self, moment: float) -> list[Failure]:
        return [f for f in self.failures if f.started >= moment]


async def write_until(
    client: Client,
    ledger: Ledger,
    writer: int,
    agent: str,
    stop: anyio.Event,
    *,
    max_appends: int,
    hang_limit: float,
    backoff: float = 0.1,
    after_ack: Callable[[Attempt], Any] | None = None,
) -> None:
    """Append until `stop` (or `max_appends`), resending an unanswered append under its key, as a client would."""
    for _ in range(max_appends):
        if stop.is_set():
            return
        attempt = ledger.new_attempt(writer, agent)
        while not await ledger.send(client, attempt, hang_limit=hang_limit):
            with anyio.move_on_after(backoff):  # a client's pause before retrying, cut short by stop
                await stop.wait()
            if stop.is_set():
                return  # left pending: `settle` resends it
        if after_ack is not None:
            await after_ack(attempt)


async def settle(client: Client, ledger: Ledger, *, hang_limit: float) -> None:
    """Resend every unanswered append under its key: each must now land (or replay) exactly once."""
    for attempt in ledger.pending:
        ok = await ledger.send(client, attempt, hang_limit=hang_limit)
        assert ok, f"retry of {attempt.key} failed after recovery: {ledger.failures[-1]}"


async def read_all_entries(client: Client, session_key: str, *, page: int = 500) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10_000):
        args: dict[str, Any] = {"session_key": session_key, "limit": page}
        if cursor is not None:
            args["cursor"] = cursor
        result = await client.call_tool("get_context", args)
        assert not result.is_error, result.content[0].text
        assert result.structured_content is not None
        entries.extend(result.structured_content["entries"])
        cursor = result.structured_content["next_cursor"]
        if cursor is None:
            return entries
    raise AssertionError("get_context never returned a last page")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def assert_intact(entries: list[dict[str, Any]], ledger: Ledger, *, everything_settled: bool = True) -> None:
    """The invariant: gap-free 1..N, every acknowledged entry present and identical, nothing half-written.

    Every stored entry must be one of the appends sent, byte for byte, and appear once; with
    `everything_settled`, every append sent must be stored (each unanswered one was resent).
    """
    sequence = [e["sequence_number"] for e in entries]
    assert sequence == list(range(1, len(entries) + 1)), "sequence numbers have a gap or a duplicate"
    acknowledged = sorted(a.receipt["sequence_number"] for a in ledger.acknowledged if a.receipt)
    assert len(acknowledged) == len(set(acknowledged)), "two appends were acknowledged with one sequence number"
    stored_keys: set[str] = set()
    for entry in entries:
        key = entry["metadata"].get("attempt")
        assert key in ledger.attempts, f"entry {entry['sequence_number']} was never sent: {entry}"
        assert key not in stored_keys, f"append {key} is stored twice"
        stored_keys.add(key)
        attempt = ledger.attempts[key]
        assert entry["content"] == attempt.content, f"entry {entry['sequence_number']} differs from what was sent"
        assert entry["content_bytes"] == len(attempt.content.encode())
        assert (entry["context_type"], entry["agent"]) == (attempt.context_type, attempt.agent)
        assert entry["metadata"] == attempt.metadata
    by_sequence = {e["sequence_number"]: e for e in entries}
    for attempt in ledger.acknowledged:
        assert attempt.receipt is not None
        stored = by_sequence.get(attempt.receipt["sequence_number"])
        assert stored is not None, f"acknowledged append {attempt.key} is lost"
        assert stored["metadata"]["attempt"] == attempt.key, f"acknowledged append {attempt.key} was overwritten"
        assert sha256(stored["content"]) == attempt.receipt["content_sha256"] == sha256(attempt.content)
        assert stored["created_at"] == attempt.receipt["created_at"]
    if everything_settled:
        assert not ledger.pending
        assert stored_keys == set(ledger.attempts), "some appends never landed"
