"""What happened, recorded in the digest: each file's last action and what it changed, every test's
latest status, the runs, the errors (the same one again is counted, not repeated) and the session's
steps in order. `folding.py` decides when; these keep the records bounded and consistent."""

from __future__ import annotations

import re
from typing import Any

from handoff.domain.digest import (
    MAX_ERRORS,
    MAX_FILES,
    MAX_RUNS,
    MAX_STEPS,
    MAX_TESTS,
    SNIPPET_CHARS,
    Digest,
)
from handoff.domain.prose import clip
from handoff.domain.testruns import BAD, TestRun

TEST_COMMAND = re.compile(
    r"\b(?:py\.?test|runtests\.py|unittest|manage\.py test|bin/test|tox|nox|jest|vitest|mocha|"
    r"(?:npm|yarn|pnpm|bun)(?: run)? test|go test|cargo (?:test|nextest)|mvn\b.*\b(?:test|verify)|"
    r"gradlew? .*test|rspec|phpunit|dotnet test|make (?:test|check)|ctest|rake test|pytest)\b"
)


def record_run(digest: Digest, seq: int, run: TestRun, command: str, exit_code: int | None) -> None:
    for outcome in run.outcomes.values():
        set_test(digest, outcome.test, outcome.status.value, seq, outcome.detail)
    if run.green:
        # A green run clears the earlier failures it covered: all of them for a bare `pytest`,
        # those under the named paths or tests for `pytest tests/test_a.py::test_one`.
        scope = test_scope(command)
        for test, info in digest.tests.items():
            if info.get("s") in ("failed", "error") and (not scope or any(part in test for part in scope)):
                info.update({"s": "passed", "q": seq})
    summary = re.sub(r",? in [\d.]+ ?s(?:econds)?\b", "", run.summary).strip(" =") or outcome_summary(run)
    digest.runs.append(
        {
            "q": seq,
            "runner": run.runner,
            "summary": clip(summary, 200),
            "green": run.green,
            "failed": run.bad_count,
            "cmd": command[:300],
        }
    )
    del digest.runs[:-MAX_RUNS]
    digest.test_command = {"q": seq, "cmd": command[:300], "exit": exit_code}
    failing = [o.test for o in run.outcomes.values() if o.status in BAD][:2]
    step(
        digest,
        seq,
        "run",
        command,
        f"`{clip(command, 60)}` → "
        + (clip(summary, 80) if summary else outcome_summary(run))
        + (f" ({', '.join(failing)})" if failing else ""),
    )


_RUNNER_WORDS = frozenset(
    [
        "python",
        "python3",
        "py",
        "-m",
        "pytest",
        "py.test",
        "test",
        "tests",
        "run",
        "go",
        "cargo",
        "npm",
        "npx",
        "yarn",
        "pnpm",
        "bun",
        "jest",
        "vitest",
        "mocha",
        "rspec",
        "bundle",
        "exec",
        "mvn",
        "gradle",
        "./gradlew",
        "dotnet",
        "tox",
        "nox",
        "make",
        "./...",
        "...",
        "--",
        "unittest",
    ]
)
_RUNNER_SCRIPT = re.compile(r"(?:^|/)(?:runtests\.py|manage\.py|bin/test|setup\.py)$")


def test_scope(command: str) -> list[str]:
    """The paths and test names a test command was limited to (empty: the whole suite)."""
    if not command:
        return []
    part = next((p for p in reversed(re.split(r"&&|;|\|\|", command)) if TEST_COMMAND.search(p)), command)
    scope = []
    for word in part.replace("⏎", " ").split():
        word = word.strip("'\"")
        if not word or word.startswith(("-", "<", ">", "2>", "|")) or "=" in word or word in _RUNNER_WORDS:
            continue
        if _RUNNER_SCRIPT.search(word) or word in ("|", "tail", "head", "grep", "2>&1"):
            continue
        scope.append(word.removeprefix("./").split("::")[-1])
    return scope


def outcome_summary(run: TestRun) -> str:
    bad = sum(1 for o in run.outcomes.values() if o.status in BAD)
    good = sum(1 for o in run.outcomes.values() if o.status.value == "passed")
    return f"{good} passed, {bad} failed (listed)"


def set_test(digest: Digest, test: str, status: str, seq: int, detail: str) -> None:
    test = test[:SNIPPET_CHARS]
    info = digest.tests.pop(test, None) or {"s": status, "q": seq, "d": "", "f": 0}
    info["s"], info["q"] = status, seq
    if detail:
        info["d"] = clip(detail, 240)
    if status in ("failed", "error"):
        info["f"] = seq
    digest.tests[test] = info
    while len(digest.tests) > MAX_TESTS:
        # Evict passing tests first (oldest first), then the oldest failure.
        victim = next((t for t, i in digest.tests.items() if i.get("s") not in ("failed", "error")), None)
        digest.tests.pop(victim if victim is not None else next(iter(digest.tests)))


def record_error(digest: Digest, seq: int, error: str, command: str) -> None:
    earlier = next((e for e in digest.errors if e.get("text") == error), None)
    step(digest, seq, "fail", command or error, (f"`{clip(command, 60)}`: " if command else "") + error)
    digest.errors = [e for e in digest.errors if e is not earlier]
    record: dict[str, Any] = {"q": seq, "text": error, "cmd": command[:200]}
    if earlier is not None:
        # The same failure again: one line with a count says more than two lines.
        record["n"] = int(earlier.get("n", 1)) + 1
        record["first"] = int(earlier.get("first", earlier.get("q", seq)))
    digest.errors.append(record)
    del digest.errors[:-MAX_ERRORS]


def step(digest: Digest, seq: int, kind: str, key: str, text: str) -> None:
    """One line of the session's story; the same thing again (an edit to the same file) updates it."""
    text = clip(" ".join(text.split()), 200)
    if not text:
        return
    last = digest.steps[-1] if digest.steps else None
    if last is not None and last.get("k") == kind and last.get("key") == key[:120] and kind != "ask":
        last.update({"q": seq, "t": text, "n": int(last.get("n", 1)) + 1})
        return
    digest.steps.append({"q": seq, "k": kind, "key": key[:120], "t": text, "n": 1})
    del digest.steps[:-MAX_STEPS]


def call_label(call: dict[str, Any] | None, tool: str) -> str:
    """What failed when it was not a shell command: the tool, and the file it was working on."""
    if call is None:
        return ""
    path = str(call.get("path") or "")
    name = str(call.get("tool") or tool or "")
    return f"{name} {path}".strip() if name and name not in ("bash", "(tool)") else path


def touch_file(digest: Digest, path: str, action: str, seq: int, gist: str = "", *, counted: bool = True) -> None:
    path = path.strip()[:300]
    if not path:
        return
    info = digest.files.pop(path, None) or {"a": action, "q": seq, "n": 0, "h": []}
    if action == "read" and info["n"] and info.get("a") != "read":
        # Reading a file after changing it does not change what happened to it.
        digest.files[path] = info
        return
    info["a"], info["q"], info["n"] = action, seq, int(info.get("n", 0)) + int(counted)
    if gist:
        info["g"] = gist
    elif action in ("reverted", "deleted"):
        info.pop("g", None)
    if action not in ("read", "ran"):
        step(digest, seq, "change", path, f"{action} {path}" + (f": {gist}" if gist else ""))
    history = [h for h in info.get("h", []) if h[0] != action]
    history.append([action, seq])
    info["h"] = history[-4:]
    digest.files[path] = info  # re-inserted last: dict order is recency order
    while len(digest.files) > MAX_FILES:
        victim = next((p for p, i in digest.files.items() if i.get("a") == "read"), None)
        digest.files.pop(victim if victim is not None else next(iter(digest.files)))
