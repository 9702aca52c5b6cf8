"""`handoff import`, `handoff hook claude-code`, `handoff watch`: capture the logs agents keep.

A log is read by its format's reader (capture/) and appended through the import service, on the
same database settings as `serve` or against a running server (`--url`, over MCP). Records are
keyed by the log's own ids, so every way in is idempotent: a hook that fires twice, a watcher
and an import racing on the same file, a re-run after a crash — each record lands once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from handoff.capture.detect import FORMATS, LogFormatError, check_readable_file, detect_format, read_log
from handoff.capture.records import Captured, Position, ReadReport, fingerprint
from handoff.config import Settings

EXIT_BAD_INPUT = 2
_JSONL_FORMATS = ("claude-code", "codex")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    imp = commands.add_parser(
        "import",
        help="Import an agent's own log into a session (idempotent: only new records are added).",
        description="Read a Claude Code, Codex, aider, mini-swe-agent or SWE-agent log into a session.",
    )
    imp.add_argument("path", help="The log file (Claude Code .jsonl, Codex rollout, .aider.chat.history.md, .traj).")
    imp.add_argument("--format", choices=["auto", *FORMATS], default="auto", help="Default: detected from content.")
    imp.add_argument("--session-key", help="Default: derived from the log's own session id.")
    imp.add_argument("--agent", help="Owner when the session is created (default: the log's agent).")
    imp.add_argument("--url", help="Import into a running server (its /mcp URL) instead of the local database.")
    imp.add_argument("--json", action="store_true", help="Print one JSON object with the counts.")
    imp.set_defaults(run=_import_command)

    hook = commands.add_parser("hook", help="Capture from an agent's hook (reads the hook input on stdin).")
    hook.add_argument("agent_kind", choices=["claude-code"], help="Which agent's hook input this is.")
    hook.add_argument("--url", help="Send to a running server instead of the local database.")
    hook.add_argument(
        "--wait",
        action="store_true",
        help="Import before returning (default: hand it to a background worker and return at once).",
    )
    hook.set_defaults(run=_hook_command)

    watch = commands.add_parser("watch", help="Follow growing logs and import what they add.")
    watch.add_argument("paths", nargs="+", help="Log files to follow (any supported format).")
    watch.add_argument("--format", choices=["auto", *FORMATS], default="auto")
    watch.add_argument("--session-key", help="One session for all paths (default: one per log).")
    watch.add_argument("--agent")
    watch.add_argument("--url")
    watch.add_argument("--interval", type=float, default=1.0, help="Seconds between checks (default 1).")
    watch.add_argument("--once", action="store_true", help="Import what is there now and exit.")
    watch.set_defaults(run=_watch_command)


@dataclass(slots=True)
class Outcome:
    session_key: str
    format: str
    imported: int = 0
    skipped: int = 0
    redacted: int = 0
    created: bool = False
    problems: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "session_key": self.session_key,
            "format": self.format,
            "imported": self.imported,
            "skipped": self.skipped,
            "redacted": self.redacted,
            "created": self.created,
            "problems": self.problems[:50],
        }


# -- commands ----------------------------------------------------------------------------------


def _quiet_logs(settings: Settings) -> None:
    """Commands print their own result; routine log lines would only bury it (errors still show)."""
    from handoff.logs import configure_logging

    configure_logging(settings.log_level or "WARNING")


def _import_command(settings: Settings, args: argparse.Namespace) -> None:
    _quiet_logs(settings)
    path = Path(args.path)
    try:
        fmt = _format(path, args.format)
    except LogFormatError as error:
        _fail(error.message)
    progress = _Progress(enabled=not args.json and sys.stderr.isatty())
    outcome = anyio.run(_import_one, settings, path, fmt, args.session_key, args.agent, args.url, progress)
    progress.done()
    if args.json:
        print(json.dumps(outcome.to_json()))
    else:
        print(
            f"{path}: {fmt} log -> session {outcome.session_key}"
            f"{' (created)' if outcome.created else ''}: {outcome.imported} imported, {outcome.skipped} skipped, "
            f"{outcome.redacted} secrets redacted"
        )
        for problem in outcome.problems[:20]:
            print(f"  line {problem['line']}: {problem['reason']}", file=sys.stderr)


def _hook_command(settings: Settings, args: argparse.Namespace) -> None:
    """Claude Code hooks (UserPromptSubmit, PostToolUse, Stop, PreCompact, SessionEnd …) pass JSON on
    stdin with session_id and transcript_path: import what the transcript gained since last time.
    A hook must never break the agent: any failure is one line on stderr and exit 0."""
    _quiet_logs(settings)
    try:
        payload = json.loads(sys.stdin.read() or "{}")
        transcript = payload.get("transcript_path") if isinstance(payload, dict) else None
        if not isinstance(transcript, str) or not transcript:
            print("handoff hook: no transcript_path in the hook input; nothing to import", file=sys.stderr)
            return
        path = Path(transcript).expanduser()
        check_readable_file(path)
        session_id = payload.get("session_id")
        key = f"claude-code-{session_id}" if isinstance(session_id, str) and session_id else None
        for _ in coalesced_turns(path):
            anyio.run(_import_one, settings, path, "claude-code", key, None, args.url, _Progress(enabled=False))
    except Exception as error:  # the agent's turn matters more than this capture
        print(f"handoff hook: {type(error).__name__}: {getattr(error, 'message', error)}", file=sys.stderr)


def coalesced_turns(transcript: Path) -> Iterator[None]:
    """One worker at a time per transcript; the rest leave a note and go.

    Claude Code fires a hook on every tool call, so workers overlap; each would start a whole import.
    The one that holds the transcript's lock imports, and imports once more for every note left
    while it worked (the import is incremental, so that costs little). A worker that finds the lock
    taken leaves its note and tries the lock once more: if the holder let go in between, this one
    takes over, so a change is never left behind. Without flock (Windows) every worker imports.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    digest = hashlib.sha256(str(transcript.resolve()).encode()).hexdigest()[:24]
    base = Path(tempfile.gettempdir()) / f"handoff-hook-{digest}"
    note = base.with_suffix(".again")
    with open(base.with_suffix(".lock"), "a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                note.touch()
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return  # the holder will see the note
            try:
                note.unlink(missing_ok=True)
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
            if not note.exists():
                return


def _watch_command(settings: Settings, args: argparse.Namespace) -> None:
    _quiet_logs(settings)
    paths = [Path(p) for p in args.paths]
    formats: dict[Path, str] = {}
    try:
        for path in paths:
            formats[path] = _format(path, args.format)
    except LogFormatError as error:
        _fail(error.message)

    async def loop() -> None:
        sizes: dict[Path, int] = {}
        while True:
            for path in paths:
                try:
                    size = path.stat().st_size
                except OSError:
                    continue  # rotated away for a moment: look again next round
                if sizes.get(path) == size:
                    continue
                outcome = await _import_one(
                    settings, path, formats[path], args.session_key, args.agent, args.url, _Progress(enabled=False)
                )
                sizes[path] = size
                if outcome.imported:
                    print(f"{path}: +{outcome.imported} -> {outcome.session_key}", flush=True)
            if args.once:
                return
            await anyio.sleep(args.interval)

    try:
        anyio.run(loop)
    except KeyboardInterrupt:
        return


def _format(path: Path, wanted: str) -> str:
    check_readable_file(path)
    detected = detect_format(path) if wanted == "auto" else wanted
    if wanted != "auto":
        try:
            seen = detect_format(path)
        except LogFormatError:
            seen = None
        if seen is not None and seen != wanted and {seen, wanted} != {"mini-swe-agent", "swe-agent"}:
            raise LogFormatError(f"{path}: --format {wanted} given, but the file is a {seen} log", {"detected": seen})
    return detected


def _fail(message: str) -> None:
    print(f"handoff: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


# -- the import itself ----------------------------------------------------------------------------


async def _import_one(
    settings: Settings,
    path: Path,
    fmt: str,
    session_key: str | None,
    agent: str | None,
    url: str | None,
    progress: _Progress,
) -> Outcome:
    from handoff.services.imports import session_key_for

    peek = ReadReport()
    for _ in zip(range(200), read_log(path, fmt, peek), strict=False):
        if peek.session_id:
            break
    key = session_key or session_key_for(fmt, peek.session_id, path.stem)
    owner = agent or peek.agent_name or fmt
    meta = {"imported_from": str(path.resolve()), "format": fmt, "log_session_id": peek.session_id}
    sources = _sources(path, fmt)
    prints = {str(p): fingerprint(p) for p in sources}
    report = ReadReport()
    outcome = Outcome(key, fmt)

    def items(starts: dict[str, Position]) -> Iterator[Any]:
        for captured in read_log(path, fmt, report, starts):
            progress.tick()
            yield _item(captured)

    if url:
        outcome.created, counts = await _import_over_mcp(url, key, owner, meta, items({}), fmt)
        outcome.imported, outcome.skipped, outcome.redacted = counts
    else:
        from handoff.container import Container

        async with Container.build(settings) as container:
            service = container.imports
            outcome.created = await service.open(key, owner, meta)
            known = await service.positions(key, prints) if fmt in _JSONL_FORMATS else {}
            starts = {source: Position(*where) for source, where in known.items()}
            result = await service.append(key, items(starts), key_prefix=f"{fmt}:")
            if fmt in _JSONL_FORMATS and report.positions:
                moved = {s: (p.offset, p.line) for s, p in report.positions.items()}
                await service.save_positions(key, moved, prints, report.records)
            outcome.imported, outcome.redacted = result.imported, result.redacted
            outcome.skipped = result.already_present
    outcome.skipped += report.skipped
    outcome.problems = [{"line": p.line, "reason": p.reason} for p in report.problems]
    return outcome


def _sources(path: Path, fmt: str) -> list[Path]:
    if fmt != "claude-code":
        return [path]
    from handoff.capture.claude_code import _subagent_files

    return [path, *_subagent_files(path)]


def _item(captured: Captured) -> Any:
    from handoff.services.context import NewContext

    # The log's own record id is the idempotency key (the import service prefixes the format).
    return NewContext(captured.context_type, captured.content, captured.metadata, captured.record_id)


async def _import_over_mcp(
    url: str, key: str, owner: str, meta: dict[str, Any], items: Iterator[Any], fmt: str
) -> tuple[bool, tuple[int, int, int]]:
    """The same import through a running server's tools: register (if new), then keyed appends."""
    from mcp.client import Client

    imported = skipped = redacted = 0
    async with Client(url) as client:
        created = await client.call_tool(
            "register_session", {"session_key": key, "source_agent": owner, "metadata": meta}
        )
        was_created = not created.is_error
        for item in items:
            result = await client.call_tool(
                "update_context",
                {
                    "session_key": key,
                    "context_type": item.context_type,
                    "content": item.content,
                    "metadata": item.metadata,
                    "idempotency_key": f"{fmt}:{item.idempotency_key}"[:200],
                },
            )
            if result.is_error:
                text = " ".join(getattr(part, "text", "") for part in result.content)
                raise LogFormatError(f"the server refused record {item.idempotency_key}: {text[:300]}", {})
            entry = (result.structured_content or {}).get("entry", {})
            if entry.get("replayed"):
                skipped += 1
            else:
                imported += 1
                redacted += int(
                    sum((entry.get("redacted") or {}).values()) if isinstance(entry.get("redacted"), dict) else 0
                )
    return was_created, (imported, skipped, redacted)


class _Progress:
    """A one-line counter on a terminal's stderr; silent otherwise."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.count = 0
        self._last = 0.0

    def tick(self) -> None:
        self.count += 1
        if self.enabled and (now := time.monotonic()) - self._last > 0.1:
            self._last = now
            print(f"\rimporting… {self.count} records", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled:
            print(f"\rimported {self.count} records      ", file=sys.stderr, flush=True)
