"""A server that answers `initialize` before its storage is up.

A stdio client starts the server and times its first answer. Loading the storage layer (SQLAlchemy,
the engine, the schema check) costs about as much as the SDK itself, and `initialize`, `tools/list`
and the other listings need none of it. So over stdio the server is built around a `ContainerGate`:
it stands in for the container, listings are answered at once, and the request pipeline holds
tool calls, resource reads and prompts until the gate opens (or reports why it never will).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from handoff.config import Settings
from handoff.errors import Unavailable
from handoff.observability.metrics import Metrics

if TYPE_CHECKING:
    from handoff.container import Container


class ContainerGate:
    """Stands in for the container until it is built; `settings` and `metrics` exist from the start."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.container: Container | None = None
        self._failure: str | None = None
        self._settled = anyio.Event()
        self.ready = False

    def open(self, container: Container) -> None:
        self.container = container
        self.ready = True
        self._settled.set()

    def fail(self, reason: str) -> None:
        self._failure = reason
        self._settled.set()

    async def wait(self) -> None:
        """Return once requests can be served; raise `Unavailable` if start-up failed."""
        await self._settled.wait()
        if self.container is None:
            raise Unavailable(f"the server could not start: {self._failure or 'it is shutting down'}")

    async def settled(self) -> None:
        await self._settled.wait()

    def __getattr__(self, name: str) -> Any:
        # Only reached for what the gate itself lacks: the container's services, once it is open.
        container = self.__dict__.get("container")
        if container is None:
            raise RuntimeError(f"container.{name} used before start-up finished (the pipeline waits for it)")
        return getattr(container, name)
