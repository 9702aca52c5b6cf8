"""The analysis of one call, as a stream of events: plan, then begin/file/error per file.

`events()` plans a call (confinement, directory walks) and analyses the planned files; asked to
share the work with other workers, it analyses its own share and hands back the others' in the
plan. `share_events()` analyses a share. The worker process runs both; `run()` collects a whole
call in-process (for the benchmark and unit tests). Every limit is enforced here; the runner adds a
hard kill on top. Per-file events carry the plan index `i`, so results from several workers merge
into plan order; the cross-file view is computed from them afterwards (`consolidate.finish`).
"""

from __future__ import annotations

import os
import stat
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tree_sitter import Parser

from handoff.analysis.confinement import MAX_PATH_CHARS, Roots, Target, read_confined, walk
from handoff.analysis.consolidate import finish
from handoff.analysis.extract import WalkTimeout, extract
from handoff.analysis.languages import detect, grammar
from handoff.analysis.reasons import FileRefused, Reason, error

AnalysisType = str  # one of handoff.domain.analysis.AnalysisType
ANALYSIS_TYPES: tuple[str, ...] = ("syntax", "dependencies", "structure", "full")
READ_CHUNK = 64 * 1024
# Splitting a call costs a round of messages and a second worker's attention; below these it is
# not worth it (and small calls keep the plain one-worker order of events).
SPLIT_MIN_FILES = 8
SPLIT_MIN_BYTES = 96 * 1024
_FILE_COST_BYTES = 2048  # per-file overhead in bytes of source, for balancing shares
# The planner starts on its share at once; a helper only once the plan has gone through the server
# and it has confined its paths again (~10 ms): that much work less for each helper.
_HAND_OVER_BYTES = 40 * 1024


@dataclass(frozen=True, slots=True)
class EngineLimits:
    max_file_bytes: int = 1024 * 1024
    max_files: int = 500
    max_total_bytes: int = 32 * 1024 * 1024
    max_seconds: float = 30.0
    parse_seconds: float = 5.0  # one file's parse

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> EngineLimits:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


Parsers = dict[str, Parser]  # by language; kept by a worker between calls


def events(
    roots: Sequence[Path],
    paths: Sequence[str],
    analysis_type: str,
    limits: EngineLimits,
    *,
    ways: int = 1,
    parsers: Parsers | None = None,
) -> Iterator[dict[str, Any]]:
    """A whole call: errors for unusable paths, the plan, then the files. With `ways` > 1 and a
    plan worth splitting, the plan event carries `jobs` for the other workers and only this
    worker's share is analysed here."""
    deadline = time.monotonic() + limits.max_seconds
    confined = Roots(list(roots))
    targets: list[Target] = []
    seen: set[Path] = set()
    for given in dict.fromkeys(paths):
        try:
            for target in _expand(confined, given, limits.max_files - len(targets) + 1):
                if target.real in seen:
                    continue
                if len(targets) >= limits.max_files:
                    yield {"t": "error", "data": error(given, Reason.TOO_MANY_FILES, _too_many(limits))}
                    break
                seen.add(target.real)
                targets.append(target)
        except FileRefused as refused:
            yield {"t": "error", "data": error(given, refused.reason, refused.message)}
    plan: dict[str, Any] = {"t": "plan", "files": [t.display for t in targets]}
    sizes = [_size(t.real) for t in targets] if len(targets) >= SPLIT_MIN_FILES else []
    if sum(sizes) >= SPLIT_MIN_BYTES:
        plan["shareable"] = True  # large enough to share, if other workers are free
    split = _split(targets, sizes, limits, ways)
    if split is None:
        yield plan
        yield from _analyse(list(enumerate(targets)), analysis_type, limits, limits.max_total_bytes, deadline, parsers)
        return
    shares, budgets, over_budget = split
    plan["jobs"] = [
        {"files": [[i, targets[i].display, str(targets[i].real)] for i in share], "budget": budget}
        for share, budget in zip(shares[1:], budgets[1:], strict=True)
    ]
    yield plan
    for i in over_budget:
        yield {"t": "error", "i": i, "data": error(targets[i].display, Reason.TOTAL_BYTES_EXCEEDED, _spent(limits))}
    mine = [(i, targets[i]) for i in shares[0]]
    yield from _analyse(mine, analysis_type, limits, budgets[0], deadline, parsers)


def share_events(
    roots: Sequence[Path],
    files: Sequence[tuple[int, str, str]],
    analysis_type: str,
    limits: EngineLimits,
    budget: int,
    *,
    parsers: Parsers | None = None,
) -> Iterator[dict[str, Any]]:
    """Another worker's share of a plan: (plan index, display path, real path) per file. Every path
    is confined again here; this worker trusts the plan no more than a client."""
    deadline = time.monotonic() + limits.max_seconds
    confined = Roots(list(roots))
    mine: list[tuple[int, Target]] = []
    for i, display, real in files:
        try:
            mine.append((i, confined.target(confined.resolve(real))))
        except FileRefused as refused:
            yield {"t": "error", "i": i, "data": error(display, refused.reason, refused.message)}
    yield from _analyse(mine, analysis_type, limits, budget, deadline, parsers)


def _analyse(
    targets: Sequence[tuple[int, Target]],
    analysis_type: str,
    limits: EngineLimits,
    budget: int,
    deadline: float,
    parsers: Parsers | None,
) -> Iterator[dict[str, Any]]:
    parsers = {} if parsers is None else parsers
    spent = 0
    for position, (i, target) in enumerate(targets):
        if time.monotonic() > deadline:
            for j, rest in targets[position:]:
                yield {"t": "error", "i": j, "data": error(rest.display, Reason.TIME_LIMIT, _out_of_time(limits))}
            return
        yield {"t": "begin", "i": i, "path": target.display}
        try:
            data = read_confined(target, max_bytes=limits.max_file_bytes)
            if spent + len(data) > budget:
                raise FileRefused(Reason.TOTAL_BYTES_EXCEEDED, _spent(limits))
            spent += len(data)
            result, refs = analyse_bytes(target.display, data, analysis_type, parsers, deadline, limits)
        except FileRefused as refused:
            yield {"t": "error", "i": i, "data": error(target.display, refused.reason, refused.message)}
            continue
        except MemoryError:
            parsers.clear()
            yield {"t": "error", "i": i, "data": error(target.display, Reason.RESOURCE_LIMIT, "ran out of memory")}
            continue
        yield {"t": "file", "i": i, "data": result, "refs": refs}


def _expand(confined: Roots, given: str, room: int) -> Iterator[Target]:
    real = confined.resolve(given)
    if real.is_dir():
        for path in walk(confined, real, limit=room):
            try:
                # The walk lists real directories: an entry that is no symlink is its own real path,
                # and resolving it again (a syscall per component) would only find that out.
                # Reading it later refuses a symlink swapped in meanwhile (read_confined).
                if os.path.islink(path) or len(str(path)) > MAX_PATH_CHARS:
                    path = confined.resolve(str(path))
                yield confined.target(path)
            except FileRefused:
                continue  # a symlink inside the directory that points outside: skipped
        return
    yield confined.target(real)


def _split(
    targets: Sequence[Target], sizes: list[int], limits: EngineLimits, ways: int
) -> tuple[list[list[int]], list[int], list[int]] | None:
    """Shares of the plan for `ways` workers, their byte budgets, and the files over the call's.

    The call's byte budget is spent in plan order, as one worker would spend it (a file over the
    per-file limit is refused unread and spends nothing), but on the sizes the files have now: a
    file that grows before it is read is refused by its share's budget.
    """
    if ways < 2 or len(targets) < SPLIT_MIN_FILES or sum(sizes) < SPLIT_MIN_BYTES:
        return None
    sizes = list(sizes)
    spent = 0
    taken: list[int] = []
    over_budget: list[int] = []
    for i, size in enumerate(sizes):
        if size > limits.max_file_bytes:
            sizes[i] = 0
        elif spent + size > limits.max_total_bytes:
            over_budget.append(i)
            continue
        spent += sizes[i]
        taken.append(i)
    # Largest first onto the least loaded share: close to even for a few hundred files.
    loads = [0] + [_HAND_OVER_BYTES] * (ways - 1)
    shares: list[list[int]] = [[] for _ in range(ways)]
    for i in sorted(taken, key=lambda i: -sizes[i]):
        k = loads.index(min(loads))
        shares[k].append(i)
        loads[k] += sizes[i] + _FILE_COST_BYTES
    shares = [sorted(share) for share in shares if share]
    if len(shares) < 2:
        return None
    return shares, [sum(sizes[i] for i in share) for share in shares], over_budget


def _size(path: Path) -> int:
    try:
        info = os.stat(path)
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


def analyse_bytes(
    display: str,
    data: bytes,
    analysis_type: str,
    parsers: Parsers,
    deadline: float,
    limits: EngineLimits,
) -> tuple[dict[str, Any], Counter[str]]:
    if b"\x00" in data:
        raise FileRefused(Reason.BINARY, "the file contains NUL bytes; it is not source text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise FileRefused(Reason.INVALID_ENCODING, f"not valid UTF-8 (byte offset {bad.start})") from None
    language = detect(display, data[:65536])
    if language is None:
        raise FileRefused(Reason.UNSUPPORTED_LANGUAGE, "unsupported language (by extension and shebang)")
    parser = parsers.get(language)
    if parser is None:
        parser = parsers[language] = Parser(grammar(language))
    stop_at = min(deadline, time.monotonic() + limits.parse_seconds)

    def read(offset: int, _point: object) -> bytes:
        return data[offset : offset + READ_CHUNK]

    def cancel(_offset: int, _has_error: bool) -> bool:
        return time.monotonic() > stop_at

    try:
        tree = parser.parse(read, progress_callback=cancel)
    except ValueError:
        parser.reset()
        raise FileRefused(Reason.PARSE_TIMEOUT, f"parsing took longer than {limits.parse_seconds:g} s") from None
    try:
        ranked = analysis_type in ("structure", "full")  # only the central-symbol ranking uses references
        facts = extract(language, tree, data, text=text, deadline=deadline, references=ranked)
    except WalkTimeout:
        raise FileRefused(Reason.TIME_LIMIT, "the call's time limit ran out while analysing this file") from None
    result: dict[str, Any] = {
        "path": display,
        "language": language,
        "bytes": len(data),
        "lines": facts.lines,
        "error_count": facts.error_count,
        "symbol_count": len(facts.symbols),
        "entry_point": facts.entry_point or data.startswith(b"#!"),
    }
    if facts.package:
        result["package"] = facts.package
    if analysis_type in ("syntax", "full"):
        result["syntax_errors"] = facts.syntax_errors
    if analysis_type in ("structure", "full"):
        result["symbols"] = facts.symbols
    if analysis_type in ("dependencies", "full"):
        result["imports"] = facts.imports
    return result, facts.references


def run(
    roots: Sequence[Path], paths: Sequence[str], analysis_type: str, limits: EngineLimits | None = None
) -> dict[str, Any]:
    """The whole analysis in this process: {"files", "errors", "consolidated"}."""
    files: dict[str, dict[str, Any]] = {}
    references: dict[str, Counter[str]] = {}
    errors: list[dict[str, Any]] = []
    for event in events(roots, paths, analysis_type, limits or EngineLimits()):
        if event["t"] == "file":
            files[event["data"]["path"]] = event["data"]
            references[event["data"]["path"]] = event["refs"]
        elif event["t"] == "error":
            errors.append(event["data"])
    imports, consolidated = finish(files, references, analysis_type)
    for path, classified in imports.items():
        files[path]["imports"] = classified
    return {"files": list(files.values()), "errors": errors, "consolidated": consolidated}


def _too_many(limits: EngineLimits) -> str:
    return f"over the limit of {limits.max_files} files per call; analyse the rest in another call"


def _spent(limits: EngineLimits) -> str:
    return f"the call's limit of {limits.max_total_bytes} bytes is used up"


def _out_of_time(limits: EngineLimits) -> str:
    return f"the call's time limit ({limits.max_seconds:g} s) ran out before this file"
