"""Metrics and tracing: what the server reports (see each module's docstring).

Import the modules themselves (`handoff.observability.metrics`, `.tracing`, `.instrumented`): this
package imports nothing, so a command that needs none of them does not pay for loading them.
"""
