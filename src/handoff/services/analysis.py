"""analyze_codebase: analyse files on the server's disk and store the result in a session's context."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from handoff.config import LimitSettings
from handoff.domain.analysis import AnalysisType
from handoff.domain.lifecycle import check_writable
from handoff.domain.models import ContextEntry
from handoff.errors import InvalidInput
from handoff.services.context import ContextService
from handoff.services.sessions import SessionService

ANALYSIS_TYPES = tuple(t.value for t in AnalysisType)
MAX_PATH_CHARS = 4096
SUMMARY_FILES = 40
SUMMARY_SYMBOLS = 15
SUMMARY_TEXT = 300

Progress = Callable[[int, int, str], Awaitable[None]]


class Analyzer(Protocol):
    """Reads and analyses files confined to its roots and limits; one result per call.

    Returns {"files": [...], "errors": [{"path", "reason", "message"}], "consolidated": {...}}.
    Per-file problems are error entries, never exceptions. It may keep worker processes between
    calls: `start` brings them up ahead of the first call, `aclose` stops them.
    """

    @property
    def max_files(self) -> int: ...

    async def analyze(
        self, paths: Sequence[str], analysis_type: str, progress: Progress | None = None
    ) -> dict[str, Any]: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    analysis: dict[str, Any]
    entry: ContextEntry
    stored_in_full: bool  # False when the stored copy had to be slimmed to fit the content limit


class AnalysisService:
    def __init__(
        self, analyzer: Analyzer, context: ContextService, sessions: SessionService, limits: LimitSettings
    ) -> None:
        self._analyzer = analyzer
        self._context = context
        self._sessions = sessions
        self._limits = limits

    async def start(self) -> None:
        """Start the analysis workers now rather than on the first call (server start-up)."""
        await self._analyzer.start()

    async def close(self) -> None:
        """Stop the analysis workers (server shutdown)."""
        await self._analyzer.aclose()

    async def analyze(
        self,
        session_key: str,
        file_paths: Sequence[str],
        analysis_type: str,
        progress: Progress | None = None,
    ) -> AnalysisResult:
        if analysis_type not in ANALYSIS_TYPES:
            raise InvalidInput(
                f"analysis_type must be one of {', '.join(ANALYSIS_TYPES)}; got {analysis_type!r}",
                {"field": "analysis_type"},
            )
        paths = _check_paths(file_paths, self._analyzer.max_files)
        # Nothing is read from disk for a session that does not exist or cannot take the result.
        view = await self._sessions.get(session_key)
        check_writable(view.session, view.session.owner_agent)

        analysis = await self._analyzer.analyze(paths, analysis_type, progress)
        content, complete = fit_content(analysis, self._limits.max_content_bytes)
        metadata = {"kind": "analysis", "analysis_type": analysis_type, "summary": summarise(analysis)}
        appended = await self._context.append(session_key, "file", content, metadata, None, None)
        return AnalysisResult(analysis=analysis, entry=appended.entry, stored_in_full=complete)


def _check_paths(file_paths: Sequence[str], max_files: int) -> list[str]:
    if isinstance(file_paths, str) or not file_paths:
        raise InvalidInput("file_paths must be a non-empty list of paths", {"field": "file_paths"})
    if len(file_paths) > max_files:
        raise InvalidInput(
            f"at most {max_files} paths per call; got {len(file_paths)}", {"field": "file_paths", "limit": max_files}
        )
    for path in file_paths:
        if not isinstance(path, str) or len(path) > MAX_PATH_CHARS:
            raise InvalidInput(
                f"each path must be a string of at most {MAX_PATH_CHARS} characters", {"field": "file_paths"}
            )
    return list(file_paths)


def summarise(analysis: dict[str, Any]) -> dict[str, Any]:
    """The compact summary kept in the entry's metadata (a few KiB at most): what the brief shows."""
    files = analysis.get("files", [])
    errors = analysis.get("errors", [])
    consolidated = analysis.get("consolidated") or {}
    central = consolidated.get("central_symbols")
    if central is None:  # no ranking for this analysis type: the first top-level symbols
        central = [s for info in files for s in info.get("symbols", []) if s.get("depth") == 0]
    return {
        "files": [str(info["path"])[:SUMMARY_TEXT] for info in files[:SUMMARY_FILES]],
        "file_count": len(files),
        "languages": dict(Counter(str(info.get("language")) for info in files)),
        "top_symbols": [str(s.get("qualified_name") or s["name"])[:SUMMARY_TEXT] for s in central[:SUMMARY_SYMBOLS]],
        "entry_points": [str(p)[:SUMMARY_TEXT] for p in consolidated.get("entry_points", [])[:10]],
        "error_count": len(errors),
        "errors_by_reason": dict(Counter(str(e.get("reason")) for e in errors)),
    }


def fit_content(analysis: dict[str, Any], max_bytes: int) -> tuple[str, bool]:
    """The analysis as JSON text, slimmed step by step until it fits the content limit."""
    text = _dump(analysis)
    if len(text.encode("utf-8")) <= max_bytes:
        return text, True
    steps = (
        lambda f: {
            **f,
            "symbols": [{k: s[k] for k in ("qualified_name", "kind", "line")} for s in f.get("symbols", [])],
        },
        lambda f: {**f, "symbols": [], "imports": [], "syntax_errors": f.get("syntax_errors", [])[:5]},
        lambda f: {"path": f["path"], "language": f.get("language"), "symbol_count": f.get("symbol_count")},
    )
    files = analysis.get("files", [])
    consolidated = analysis.get("consolidated") or {}
    for step in steps:
        files = [step(f) for f in files]
        slim = {"files": files, "errors": analysis.get("errors", []), "consolidated": consolidated, "truncated": True}
        text = _dump(slim)
        if len(text.encode("utf-8")) <= max_bytes:
            return text, False
    summary = {"summary": summarise(analysis), "truncated": True}
    return _dump(summary), False


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
