"""The analysis of one call, as a stream of events: plan, begin/file/error per file, done.

`events()` is what the worker process runs; `run()` collects the same events in-process (for the
benchmark and unit tests). Every limit is enforced here; the runner adds a hard kill on top.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tree_sitter import Parser

from handoff.analysis.confinement import Roots, Target, read_confined, walk
from handoff.analysis.consolidate import FileIndex, classify_imports, consolidate
from handoff.analysis.extract import WalkTimeout, extract
from handoff.analysis.languages import detect, grammar
from handoff.analysis.reasons import FileRefused, Reason

AnalysisType = str  # one of handoff.domain.analysis.AnalysisType
ANALYSIS_TYPES: tuple[str, ...] = ("syntax", "dependencies", "structure", "full")
READ_CHUNK = 64 * 1024


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


def error(path: str, reason: Reason, message: str) -> dict[str, Any]:
    return {"path": path[:300], "reason": reason.value, "message": message}


def events(
    roots: Sequence[Path], paths: Sequence[str], analysis_type: str, limits: EngineLimits
) -> Iterator[dict[str, Any]]:
    started = time.monotonic()
    deadline = started + limits.max_seconds
    confined = Roots(list(roots))
    targets: list[tuple[str, Target]] = []
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
                targets.append((given, target))
        except FileRefused as refused:
            yield {"t": "error", "data": error(given, refused.reason, refused.message)}
    yield {"t": "plan", "files": [t.display for _, t in targets]}

    files: dict[str, dict[str, Any]] = {}
    references: dict[str, Counter[str]] = {}
    total_bytes = 0
    parsers: dict[str, Parser] = {}
    for position, (_given, target) in enumerate(targets):
        if time.monotonic() > deadline:
            for _, rest in targets[position:]:
                yield {"t": "error", "data": error(rest.display, Reason.TIME_LIMIT, _out_of_time(limits))}
            break
        yield {"t": "begin", "path": target.display}
        try:
            data = read_confined(target, max_bytes=limits.max_file_bytes)
            if total_bytes + len(data) > limits.max_total_bytes:
                raise FileRefused(
                    Reason.TOTAL_BYTES_EXCEEDED, f"the call's limit of {limits.max_total_bytes} bytes is used up"
                )
            total_bytes += len(data)
            result, refs = analyse_bytes(target.display, data, analysis_type, parsers, deadline, limits)
        except FileRefused as refused:
            yield {"t": "error", "data": error(target.display, refused.reason, refused.message)}
            continue
        except MemoryError:
            parsers.clear()
            yield {"t": "error", "data": error(target.display, Reason.RESOURCE_LIMIT, "ran out of memory")}
            continue
        files[target.display] = result
        references[target.display] = refs
        yield {"t": "file", "data": result}
    imports, consolidated = finish(files, references, analysis_type)
    yield {"t": "done", "imports": imports, "consolidated": consolidated}


def _expand(confined: Roots, given: str, room: int) -> Iterator[Target]:
    real = confined.resolve(given)
    if real.is_dir():
        for path in walk(confined, real, limit=room):
            try:
                yield confined.target(confined.resolve(str(path)))
            except FileRefused:
                continue  # a symlink inside the directory that points outside: skipped
        return
    yield confined.target(real)


def analyse_bytes(
    display: str,
    data: bytes,
    analysis_type: str,
    parsers: dict[str, Parser],
    deadline: float,
    limits: EngineLimits,
) -> tuple[dict[str, Any], Counter[str]]:
    if b"\x00" in data:
        raise FileRefused(Reason.BINARY, "the file contains NUL bytes; it is not source text")
    try:
        data.decode("utf-8")
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
        facts = extract(language, tree, data, deadline=deadline)
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


def finish(
    files: Mapping[str, dict[str, Any]], references: Mapping[str, Counter[str]], analysis_type: str
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """Imports classified against the analysed set, and the consolidated view."""
    index = FileIndex(files)
    imports = {path: classify_imports(index, path, info) for path, info in files.items() if "imports" in info}
    merged = {path: {**info, "imports": imports.get(path, [])} for path, info in files.items()}
    consolidated = consolidate(merged, references)
    if analysis_type not in ("dependencies", "full"):
        consolidated.pop("module_graph")
        consolidated.pop("external_dependencies")
        consolidated.pop("imports")
    if analysis_type not in ("structure", "full"):
        consolidated.pop("central_symbols")
    return imports, consolidated


def run(
    roots: Sequence[Path], paths: Sequence[str], analysis_type: str, limits: EngineLimits | None = None
) -> dict[str, Any]:
    """The whole analysis in this process: {"files", "errors", "consolidated"}."""
    files: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    consolidated: dict[str, Any] = {}
    for event in events(roots, paths, analysis_type, limits or EngineLimits()):
        if event["t"] == "file":
            files.append(event["data"])
        elif event["t"] == "error":
            errors.append(event["data"])
        elif event["t"] == "done":
            for info in files:
                if info["path"] in event["imports"]:
                    info["imports"] = event["imports"][info["path"]]
            consolidated = event["consolidated"]
    return {"files": files, "errors": errors, "consolidated": consolidated}


def _too_many(limits: EngineLimits) -> str:
    return f"over the limit of {limits.max_files} files per call; analyse the rest in another call"


def _out_of_time(limits: EngineLimits) -> str:
    return f"the call's time limit ({limits.max_seconds:g} s) ran out before this file"
