"""uvicorn, announcing where it serves: imported only by `handoff serve --transport http`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

import handoff
from handoff.container import Container
from handoff.logs import get_logger

log = get_logger("handoff.cli")


class AnnouncingServer(uvicorn.Server):
    """uvicorn, plus a banner with the real bound port once the socket is listening."""

    container: Container

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the SIGTERM/SIGINT it handled once serve() returns, which kills the
        # process before our shutdown (draining tasks, closing the database, flushing spans) runs.
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.should_exit or not self.servers:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        url = f"http://{host}:{port}/mcp"
        print(banner(url, self.container), flush=True)
        log.info("serving", transport="http", url=url)


def banner(url: str, container: Container) -> str:
    config = json.dumps({"mcpServers": {"handoff": {"type": "http", "url": url}}}, indent=2)
    database = container.engine.url.render_as_string(hide_password=True)
    return (
        f"handoff {handoff.__version__} serving MCP at {url}\n"
        f"database: {database}\n"
        f"health: {url.removesuffix('/mcp')}/healthz  readiness: {url.removesuffix('/mcp')}/readyz\n"
        f"client config (Claude Code: claude mcp add --transport http handoff {url}):\n{config}"
    )
