"""Code analysis adapter: tree-sitter parsing, path confinement and the consolidated view.

The server never parses in its own process: `runner.SubprocessAnalyzer` hands each call to warm
worker processes (`pool.py`, `python -m handoff.analysis.worker`) that run with resource limits and
a hard deadline, and reads their results as JSON lines. `engine.run` is the same analysis
in-process (the benchmark and pure unit tests use it). Nothing here imports services, entry points
or storage.

This module imports nothing on purpose: the worker starts through it, and should start fast.
"""
