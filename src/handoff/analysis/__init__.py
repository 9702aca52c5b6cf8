"""Code analysis adapter: tree-sitter parsing, path confinement and the consolidated view.

The server never parses in its own process: `SubprocessAnalyzer` (runner.py) starts
`python -m handoff.analysis.worker` per call, with resource limits and a hard deadline, and reads
its results as JSON lines. `engine.run` is the same analysis in-process (the worker, the benchmark
and pure unit tests use it). Nothing here imports services, entry points or storage.
"""

from __future__ import annotations

from handoff.analysis.reasons import Reason
from handoff.analysis.runner import AnalyzerLimits, SubprocessAnalyzer

__all__ = ["AnalyzerLimits", "Reason", "SubprocessAnalyzer"]
