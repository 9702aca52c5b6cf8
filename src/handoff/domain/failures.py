"""Reading what went wrong out of a tool's output: a traceback's last line, a runner's error line,
or, when no pattern knows the output, the line that names the failure."""

from __future__ import annotations

import re

from handoff.domain.tooluse import is_noise_line

_TRACEBACK = "Traceback (most recent call last):"
_EXCEPTION_LINE = re.compile(
    r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Failure|Fault|Timeout|Denied)\b.*)$"
)
_ERROR_LINES = [
    re.compile(r"^E\s{2,}((?:[\w.]+(?:Error|Exception)\b|assert\b).*)$"),
    re.compile(r"^(error(?:\[E\d+\])?: .+)$"),
    re.compile(r"^(\S+:\d+(?::\d+)?: (?:fatal )?error: .+)$"),
    re.compile(r"^((?:npm ERR!|fatal:|panic:|FATAL:|Error:|ERROR:|SyntaxError:|TypeError:|ReferenceError:) .+)$"),
    re.compile(r"^(.+: command not found)$"),
    re.compile(r"^(.+: No such file or directory)$"),
]


_NAMED_ERROR = re.compile(r"\b[A-Z]\w*(?:Error|Exception)\b:\s*\S.*$")
_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)', re.M)


def _traceback_error(block: str, exception: str) -> str:
    """A bare exception (`AssertionError`) says little: add where it was raised and the line."""
    if ":" in exception and not exception.rstrip().endswith(":"):
        return exception
    frames = list(_FRAME.finditer(block))
    if not frames:
        return exception
    last = frames[-1]
    after = block[last.end() :].splitlines()
    code = next((line.strip() for line in after[1:3] if line.strip() and not line.lstrip().startswith("^")), "")
    where = f"{last.group(1).rsplit('/', 1)[-1]}:{last.group(2)} in {last.group(3)}"
    return f"{exception} at {where}" + (f": {code}" if code else "")


def last_error(output: str) -> str | None:
    """The line that says what went wrong: a traceback's last line, or the runner's error line."""
    text = output[-200_000:]
    position = text.rfind(_TRACEBACK)
    if position != -1:
        for line in text[position + len(_TRACEBACK) :].splitlines():
            if not line.strip() or line[:1].isspace():
                continue
            if line.startswith(("During handling", "The above exception")):
                continue
            if _EXCEPTION_LINE.match(line.strip()) or ":" in line:
                return _traceback_error(text[position:], line.strip())[:300]
    lines = text.splitlines()
    for line in reversed(lines[-400:]):
        stripped = line.rstrip()
        for pattern in _ERROR_LINES:
            if match := pattern.match(stripped):
                return match.group(1).strip()[:300]
    for line in reversed(lines[-400:]):
        if match := _NAMED_ERROR.search(line):
            return match.group(0).strip()[:300]
    return None


_TAG = re.compile(r"</?[a-z_]+>")


_FAILURE_WORDS = re.compile(
    r"error|fail|denied|not found|no such|invalid|cannot|can't|could not|couldn't|missing|refused|timed? ?out|"
    r"exception|not allowed|forbidden|unable|does not exist|doesn't exist|not permitted|conflict|locked|abort",
    re.I,
)
_LOG_PREFIX = re.compile(r"^\[?\d{4}-\d\d-\d\d[T ][\d:.,]+\]?\s*(?:\S+\[\d+(?::\d+)?\])?:?\s*")


def failure_line(output: str) -> str | None:
    """What a failed tool said, when no runner or traceback pattern knows it: the line that names the failure."""
    candidates = []
    for line in output[:6000].splitlines():
        text = _LOG_PREFIX.sub("", " ".join(_TAG.sub(" ", line).split()))
        if len(text) > 8 and not is_noise_line(text) and not text.startswith(("Command:", "$ ")):
            candidates.append(text)
    for text in candidates:
        if _FAILURE_WORDS.search(text):
            return text[:240]
    return candidates[0][:240] if candidates else None
