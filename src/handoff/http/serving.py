"""uvicorn, announcing where it serves: imported only by `handoff serve --transport http`."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import os
import socket
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

import handoff
from handoff.container import Container
from handoff.errors import CannotStart
from handoff.http.connections import AcceptErrorLog
from handoff.logs import get_logger

log = get_logger("handoff.cli")

WILDCARD_HOSTS = {"0.0.0.0", "::", ""}


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The listening socket, bound before anything else starts, or one line saying why it can't be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets whose protocol says TCP,
    # and without it every answer waits ~40 ms for the client's delayed ACK (Nagle).
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # SO_REUSEADDR lets a restart bind while old connections linger in TIME_WAIT; a port another
        # process listens on is still refused.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        listener.bind((host, port))
        listener.listen(backlog)
    except (socket.gaierror, UnicodeError) as error:
        listener.close()
        raise CannotStart(f"cannot listen on {host!r}: not an address or host name of this machine.") from error
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise CannotStart(
                f"cannot listen on {host}:{port}: the address is already in use (another handoff "
                "server?). Stop it, or pick another port with --port (0 picks a free one)."
            ) from error
        if error.errno == errno.EACCES:
            raise CannotStart(
                f"cannot listen on {host}:{port}: permission denied (ports below 1024 need privileges); "
                "pick another port with --port."
            ) from error
        raise CannotStart(f"cannot listen on {host}:{port}: {error.strerror or error}; check --host.") from error
    listener.setblocking(False)
    return listener


class AnnouncingServer(uvicorn.Server):
    """uvicorn, plus a banner with the real bound port once the socket is listening.

    It also notices the commonest misconfiguration: a client config that starts `handoff serve`
    expecting stdio. Such a client writes JSON-RPC to our stdin; rather than leave it timing out
    and this server running on, the server stops and says which command to use.
    """

    def __init__(
        self, config: uvicorn.Config, container: Container, before_shutdown: Callable[[], None] | None = None
    ) -> None:
        super().__init__(config)
        self.container = container
        self.misdirected_stdio_client = False
        self._before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Open subscription streams never finish by themselves: ended first (gracefully, so clients
        # know to listen again elsewhere), or uvicorn would wait out its whole graceful timeout.
        if self._before_shutdown is not None:
            self._before_shutdown()
        await super().shutdown(sockets)

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
        AcceptErrorLog(asyncio.get_running_loop())
        print(banner(str(host), int(port), self.container), flush=True)
        log.info("serving", transport="http", url=local_url(str(host), int(port)))
        self._watch_stdin()

    def _watch_stdin(self) -> None:
        """Listen on stdin only when it is a pipe or socket: a terminal or /dev/null is never a client."""
        try:
            fd = sys.stdin.fileno()
            mode = os.fstat(fd).st_mode
        except (OSError, ValueError, AttributeError):
            return
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
            return
        loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(fd)  # closed: whoever held the pipe is gone, and that is fine
                return
            if b'"jsonrpc"' in data and data.lstrip().startswith(b"{"):
                loop.remove_reader(fd)
                self.misdirected_stdio_client = True
                self.should_exit = True

        loop.add_reader(fd, readable)


def local_url(host: str, port: int) -> str:
    """A URL this machine can open: a wildcard bind is reached over loopback."""
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/mcp"


def reachable_addresses() -> list[str]:
    """This machine's non-loopback addresses, best effort (the route to the outside first)."""
    found: list[str] = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: connecting a UDP socket sends nothing
        found.append(probe.getsockname()[0])
    except OSError:
        pass
    finally:
        probe.close()
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        infos = []
    for info in infos:
        address = str(info[4][0])
        if address not in found:
            found.append(address)
    return [a for a in found if not ipaddress.ip_address(a).is_loopback]


def banner(host: str, port: int, container: Container) -> str:
    url = local_url(host, port)
    config = json.dumps({"mcpServers": {"handoff": {"type": "http", "url": url}}}, indent=2)
    database = container.engine.url.render_as_string(hide_password=True)
    base = url.removesuffix("/mcp")
    lines = [
        f"handoff {handoff.__version__} serving MCP at {url}",
        f"database: {database}",
        f"health: {base}/healthz  readiness: {base}/readyz  metrics: {base}/metrics",
    ]
    if host in WILDCARD_HOSTS:
        others = [f"{a}:{port}" for a in reachable_addresses()]
        allowed = set(container.settings.http.allowed_hosts)
        if others:
            lines.append("from other machines: " + "  ".join(f"http://{a}/mcp" for a in others))
        missing = [a for a in others if a not in allowed]
        if missing or not others:
            hint = json.dumps(missing or ["your.host.name:" + str(port)])
            lines.append(
                "  (requests name the host they reach; accept those names with "
                f"HANDOFF_HTTP__ALLOWED_HOSTS='{hint}', or they are refused with 421)"
            )
    lines.append(f"client config (Claude Code: claude mcp add --transport http handoff {url}):\n{config}")
    return "\n".join(lines)
