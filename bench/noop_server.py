"""The floor: a do-nothing tool served by the same SDK, on the same transport, with the same settings.

Run as `python bench/noop_server.py --port 0`; prints `serving MCP at http://HOST:PORT/mcp` once
listening, like `handoff serve --transport http` does, so one launcher starts either.

Same as handoff's HTTP app (src/handoff/http/app.py + cli.py): streamable HTTP at /mcp, stateful
sessions, SSE responses (json_response off), DNS-rebinding protection on for loopback hosts and
origins, uvicorn with no access log and lifespan on. What it lacks is everything handoff does.
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


def build_server() -> MCPServer:
    server: MCPServer = MCPServer(name="noop", version="0")

    # async, like handoff's tools: a sync tool would add a worker-thread hop to the floor.

    async def noop() -> dict[str, Any]:
        """Do nothing."""
        return {"ok": True}

    async def noop_payload(payload: str) -> dict[str, Any]:
        """Do nothing with a payload (transport and JSON cost of a large argument)."""
        return {"ok": True, "chars": len(payload)}

    server.add_tool(noop, structured_output=True)
    server.add_tool(noop_payload, structured_output=True)
    return server


def build_app(host: str) -> Any:
    server = build_server()
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=LOOPBACK_HOSTS, allowed_origins=LOOPBACK_ORIGINS
    )
    return server.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=security,
        max_request_body_size=64 * 1024 * 1024,
        host=host,
    )


class _AnnouncingServer(uvicorn.Server):
    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.should_exit or not self.servers:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        print(f"noop serving MCP at http://{host}:{port}/mcp", flush=True)


async def _serve(host: str, port: int) -> None:
    config = uvicorn.Config(
        build_app(host),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    await _AnnouncingServer(config).serve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stdio", action="store_true", help="serve over stdio instead of HTTP")
    args = parser.parse_args()
    if args.stdio:
        anyio.run(build_server().run_stdio_async)
        return
    anyio.run(_serve, args.host, args.port)


if __name__ == "__main__":
    main()
