"""Bearer-token authentication for /mcp (HANDOFF_AUTH__MODE=tokens or oauth), as a small ASGI middleware.

Every request under /mcp must carry `Authorization: Bearer <token>`; anything else — no header, an
unknown, revoked or expired token — is answered 401 with `WWW-Authenticate: Bearer` before the MCP
transport sees it (in oauth mode with `resource_metadata`, RFC 9728, and the reason; a token
without the required scope is 403 `insufficient_scope`, RFC 6750 §3.1). The token's agent goes
into the ASGI scope under `AGENT_SCOPE_KEY`; the SDK hands the request to the request pipeline
(`ctx.request`), which binds it for the tools (mcp/identity.py).
/healthz, /readyz and /metrics stay open.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.types import ASGIApp, Receive, Scope, Send

from handoff.config import AuthSettings
from handoff.errors import CannotStart, InvalidInput, Unavailable
from handoff.logs import get_logger
from handoff.mcp.identity import AGENT_SCOPE_KEY

log = get_logger("handoff.http")

# The agent a bearer secret acts as; None (or TokenRejected, which says why) when it does not.
Authenticate = Callable[[str], Awaitable[str | None]]
PROTECTED_PREFIX = "/mcp"


class TokenRejected(Exception):
    """The token was read and refused; the message says why, for the client (never the token itself)."""


class ScopeMissing(Exception):
    def __init__(self, required: Sequence[str], missing: Sequence[str]) -> None:
        super().__init__(f"the token lacks the scope {' '.join(missing)} (this server requires: {' '.join(required)})")
        self.required = tuple(required)


@dataclass(frozen=True)
class Challenge:
    """What a 401/403 tells the client about where to get a token (oauth mode)."""

    resource_metadata: str | None = None
    scopes: tuple[str, ...] = ()


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth: AuthSettings) -> None:
    """Serving without authentication is only for this machine: any other bind refuses to start. OAuth
    needs its issuer and resource before anything listens."""
    if auth.mode == "none" and not is_loopback(host):
        raise CannotStart(
            f"refusing to serve {host} without authentication (HANDOFF_AUTH__MODE=none is for loopback "
            "binds only): set HANDOFF_AUTH__MODE=tokens and create a token with `handoff tokens create "
            "--agent NAME` (or HANDOFF_AUTH__MODE=oauth with an authorization server), or bind 127.0.0.1."
        )
    if auth.mode == "oauth":
        from handoff.http.oauth import OAuthConfig  # only oauth mode pays for the JOSE imports

        try:
            OAuthConfig.of(auth.oauth)
        except InvalidInput as error:
            raise CannotStart(error.message) from None


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = bytes(value).decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
            return None
    return None


class BearerAuth:
    def __init__(self, app: ASGIApp, authenticate: Authenticate, challenge: Challenge | None = None) -> None:
        self._app = app
        self._authenticate = authenticate
        self._challenge = challenge or Challenge()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _protected(scope.get("path", "")):
            await self._app(scope, receive, send)
            return
        secret = _bearer(scope)
        reason = None
        try:
            agent = None if secret is None else await self._authenticate(secret)
        except Unavailable as error:  # the database or issuer cannot say: the client may retry, it is not refused
            log.warning("token check unavailable", error=error.message)
            await _respond(send, 503, {"code": error.code, "message": error.message}, [(b"retry-after", b"1")])
            return
        except TokenRejected as rejected:
            agent, reason = None, str(rejected)
        except ScopeMissing as missing:
            await _insufficient_scope(send, self._challenge, missing)
            return
        if agent is None:
            await _unauthorized(send, self._challenge, token_given=secret is not None, reason=reason)
            return
        scope[AGENT_SCOPE_KEY] = agent
        # The SDK ties an MCP session to the principal that opened it: another agent's request with
        # that session id is answered as if the session did not exist, so a leaked id is no use.
        scope["user"] = _principal(agent)
        await self._app(scope, receive, send)


@functools.lru_cache(maxsize=1024)
def _principal(agent: str) -> AuthenticatedUser:
    """The SDK's view of an authenticated agent (no secret kept in it); one per agent, reused."""
    return AuthenticatedUser(AccessToken(token="", client_id=agent, scopes=[], subject=agent))


def _protected(path: str) -> bool:
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


async def _unauthorized(send: Send, challenge: Challenge, *, token_given: bool, reason: str | None) -> None:
    if token_given:
        message = reason or "the bearer token is unknown, revoked or expired"
        params = [("error", "invalid_token"), ("error_description", message)]
    else:  # RFC 6750 §3.1: no error code when the request carried no credentials at all
        message, params = "a bearer token is required", []
    if challenge.scopes:
        params.append(("scope", " ".join(challenge.scopes)))
    header = _www_authenticate(params, challenge)
    await _respond(send, 401, {"code": "unauthorized", "message": message}, [(b"www-authenticate", header)])


async def _insufficient_scope(send: Send, challenge: Challenge, missing: ScopeMissing) -> None:
    required = " ".join(missing.required)
    params = [("error", "insufficient_scope"), ("scope", required), ("error_description", str(missing))]
    header = _www_authenticate(params, challenge)
    await _respond(send, 403, {"code": "forbidden", "message": str(missing)}, [(b"www-authenticate", header)])


def _www_authenticate(params: list[tuple[str, str]], challenge: Challenge) -> bytes:
    if challenge.resource_metadata is not None:
        params = [*params, ("resource_metadata", challenge.resource_metadata)]
    if not params:
        return b"Bearer"
    return ("Bearer " + ", ".join(f'{name}="{_quotable(value)}"' for name, value in params)).encode("ascii")


def _quotable(value: str) -> str:
    """RFC 6750 §3 allows printable ASCII but `"` and `\\` in these values; a claim may hold anything."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in value)


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
