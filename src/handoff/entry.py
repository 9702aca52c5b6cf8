"""The `handoff` command's first stop: hooks answer at once, everything else loads the CLI.

An agent runs `handoff hook claude-code` on every prompt and tool call and waits for it, so that
path must cost a Python start-up and nothing more: it checks the hook input with the standard
library, hands the import to a detached worker process (`handoff hook-worker`), and returns. The
worker imports the log like `handoff import` does; records are keyed by the log's own ids, so
workers that overlap (hooks firing in quick succession) never store a record twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        from handoff import __version__

        print(f"handoff {__version__}")
        return
    if len(args) >= 2 and args[0] == "hook" and "--wait" not in args and not {"-h", "--help"} & set(args):
        sys.exit(_hook(args[1], args[2:]))
    from handoff.cli import main as cli_main

    cli_main(args)


def _hook(kind: str, rest: list[str]) -> int:
    if kind != "claude-code":
        print(f"handoff hook: unknown agent {kind!r}; supported: claude-code", file=sys.stderr)
        return 2
    raw = sys.stdin.read()
    try:
        payload = json.loads(raw or "{}")
    except ValueError:
        print("handoff hook: the hook input on stdin is not JSON; nothing imported", file=sys.stderr)
        return 0  # never break the agent's turn
    transcript = payload.get("transcript_path") if isinstance(payload, dict) else None
    if not isinstance(transcript, str) or not os.path.isfile(os.path.expanduser(transcript)):
        print("handoff hook: no readable transcript_path in the hook input; nothing imported", file=sys.stderr)
        return 0
    command = [sys.executable, "-m", "handoff", "hook", kind, "--wait", *rest]
    worker = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives this process, and the agent's signals
        close_fds=True,
    )
    assert worker.stdin is not None
    worker.stdin.write(raw.encode())
    worker.stdin.close()
    return 0
