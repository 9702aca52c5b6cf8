"""Bearer-token authentication for /mcp (HANDOFF_AUTH__MODE=tokens), as a small ASGI middleware.

Every request under /mcp must carry `Authorization: Bearer <token>`; anything else — no header, an
unknown, revoked or expired token — is answered 401 with `WWW-Authenticate: Bearer` before the MCP
transport sees it. The token's agent goes into the ASGI scope under `AGENT_SCOPE_KEY`; the SDK hands
the request to the request pipeline (`ctx.request`), which binds it for the tools (mcp/identity.py).
/healthz, /readyz and /metrics stay open.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from handoff.errors import CannotStart, Unavailable
from handoff.logs import get_logger
from handoff.mcp.identity import AGENT_SCOPE_KEY

log = get_logger("handoff.http")

Authenticate = Callable[[str], Awaitable[str | None]]
PROTECTED_PREFIX = "/mcp"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, mode: str) -> None:
    """Serving without authentication is only for this machine: any other bind refuses to start."""
    if mode == "none" and not is_loopback(host):
        raise CannotStart(
            f"refusing to serve {host} without authentication (HANDOFF_AUTH__MODE=none is for loopback "
            "binds only): set HANDOFF_AUTH__MODE=tokens and create a token with `handoff tokens create "
            "--agent NAME`, or bind 127.0.0.1."
        )


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = bytes(value).decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
            return None
    return None


class BearerAuth:
    def __init__(self, app: ASGIApp, authenticate: Authenticate) -> None:
        self._app = app
        self._authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _protected(scope.get("path", "")):
            await self._app(scope, receive, send)
            return
        secret = _bearer(scope)
        try:
            agent = None if secret is None else await self._authenticate(secret)
        except Unavailable as error:  # the database cannot say: the client may retry, it is not refused
            log.warning("token check unavailable", error=error.message)
            await _respond(send, 503, {"code": error.code, "message": error.message}, [(b"retry-after", b"1")])
            return
        if agent is None:
            await _unauthorized(send, token_given=secret is not None)
            return
        scope[AGENT_SCOPE_KEY] = agent
        await self._app(scope, receive, send)


def _protected(path: str) -> bool:
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


async def _unauthorized(send: Send, *, token_given: bool) -> None:
    challenge = 'Bearer error="invalid_token"' if token_given else "Bearer"
    message = "the bearer token is unknown, revoked or expired" if token_given else "a bearer token is required"
    await _respond(send, 401, {"code": "unauthorized", "message": message}, [(b"www-authenticate", challenge.encode())])


async def _respond(send: Send, status: int, error: dict[str, str], headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
