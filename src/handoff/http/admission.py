"""Who may open an MCP session on this replica, and what the requests of an admitted session may do.

The SDK's session manager keeps every session in this replica's memory, up to one cap shared by all
callers (10,000); 10,000 `initialize` calls that never come back would lock every other client out
with 503 for the 30 minutes a session may idle. Here instead:

- Each principal (the token's agent with authentication, else the client address) holds at most
  `max_sessions_per_principal` sessions; past it that principal, and only it, gets 429 with a
  JSON-RPC error body. The count lives in this process because the sessions do.
- A session that makes no request after `initialize` is closed after `unused_session_seconds`.
- A JSON-RPC request id still in flight in a session is refused at once when it is sent again: the
  SDK keys each request's answer stream by its id, so a duplicate would take over the first one's
  stream and leave the other waiting forever.

The SDK (pinned below 2.4) offers no hook for any of this. `RequesterContext`, the one middleware
every request already passes, reserves a place for a request that opens a session; the manager's
private `_admit_session` and `_discard_session` are wrapped to keep the count, and each admitted
transport gets its `handle_request` and `_validate_request_headers` replaced. The request id is read
where the SDK itself parses the body (its module's `jsonrpc_message_adapter`), so a large body is
not parsed twice. tests/security/ fails if a newer SDK stops honouring any of these.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import mcp.server.streamable_http as sdk_transport
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types import INVALID_REQUEST, JSONRPCRequest, RequestId
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from handoff.logs import Throttled, get_logger
from handoff.mcp.identity import AGENT_SCOPE_KEY

log = get_logger("handoff.http")

# JSON-RPC leaves -32000..-32099 to the server; this one says "too many sessions for you".
TOO_MANY_SESSIONS = -32029
_SESSION_HEADER = MCP_SESSION_ID_HEADER.encode()
_VERSION_HEADER = MCP_PROTOCOL_VERSION_HEADER.encode()
MCP_PATH = "/mcp"  # the one route the SDK's session manager serves (app.py)

# The authenticated agent of the HTTP request being served (None without authentication). The
# manager admits a session, and the transport replays a stream, inside that request's task.
_requester: ContextVar[str | None] = ContextVar("handoff_stream_requester", default=None)


def requester() -> str | None:
    return _requester.get()


@dataclass
class _Opening:
    """A request without a session id: it holds a place in its principal's count while it is served,
    and hands that place to the session if the manager admits one."""

    principal: str
    admitted: bool = False


_opening: ContextVar[_Opening | None] = ContextVar("handoff_opening_request", default=None)


class SessionAdmission:
    def __init__(
        self,
        manager: StreamableHTTPSessionManager,
        *,
        per_principal: int,
        unused_seconds: float,
        idle_seconds: float,
        bind: Callable[[StreamableHTTPServerTransport], None] | None = None,
    ) -> None:
        self.per_principal = per_principal
        self.unused_seconds = unused_seconds
        self._idle_seconds = idle_seconds
        self._bind = bind
        # Sessions plus opening requests in flight, per principal; a principal at 0 is forgotten.
        self._held: dict[str, int] = {}
        self._principal_of: dict[str, str] = {}
        self._refusals = Throttled(log, "MCP sessions refused: principal at HANDOFF_HTTP__MAX_SESSIONS_PER_PRINCIPAL")
        self._admit_session = manager._admit_session
        self._discard_session = manager._discard_session
        manager._admit_session = self._admit  # type: ignore[method-assign]
        manager._discard_session = self._discard  # type: ignore[method-assign]
        _hook_parsing()

    def held(self, principal: str) -> int:
        return self._held.get(principal, 0)

    async def serve_opening(self, principal: str, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        # Counted before the first await, so concurrent openings of one principal cannot all pass.
        if self.held(principal) >= self.per_principal:
            self._refusals.note(principal=principal)
            await self._refuse(principal, send)
            return
        self._held[principal] = self.held(principal) + 1
        opening = _Opening(principal)
        token = _opening.set(opening)
        try:
            await app(scope, receive, send)
        finally:
            _opening.reset(token)
            if not opening.admitted:
                self._release(principal)

    def _admit(self, requestor: Any) -> StreamableHTTPServerTransport | None:
        opening = _opening.get()
        if opening is None or opening.admitted:
            # Every request reaches the manager through RequesterContext; if one did not, it is refused
            # rather than left uncounted.
            log.error("MCP session refused: opening request not seen by the admission gate")
            return None
        transport = self._admit_session(requestor)
        if transport is None or transport.mcp_session_id is None:
            return transport  # the replica-wide cap: the SDK answers 503
        opening.admitted = True
        self._principal_of[transport.mcp_session_id] = opening.principal
        transport._idle_timeout = self.unused_seconds  # until the session makes a request (`used`)
        SessionRequests(transport, self._idle_seconds)
        if self._bind is not None:
            self._bind(transport)
        return transport

    async def _discard(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        principal = self._principal_of.pop(session_id, None)  # called more than once per session: once counts
        if principal is not None:
            self._release(principal)
        await self._discard_session(session_id, transport)

    def _release(self, principal: str) -> None:
        left = self.held(principal) - 1
        if left > 0:
            self._held[principal] = left
        else:
            self._held.pop(principal, None)

    async def _refuse(self, principal: str, send: Send) -> None:
        kind, _, name = principal.partition(":")
        message = (
            f"too many open MCP sessions for {kind} {name}: at most {self.per_principal} "
            "(HANDOFF_HTTP__MAX_SESSIONS_PER_PRINCIPAL); end sessions you no longer use (DELETE /mcp) or retry "
            f"after {self.unused_seconds:g} s, when sessions that made no request after initialize are closed"
        )
        error = {"code": TOO_MANY_SESSIONS, "message": message, "data": {"reason": "too_many_sessions"}}
        headers = [(b"retry-after", str(max(1, round(self.unused_seconds))).encode())]
        await _send_json(send, 429, {"jsonrpc": "2.0", "id": None, "error": error}, headers)


class RequesterContext:
    """ASGI middleware every request passes: makes the request's authenticated agent visible to the
    event stores, and sends a request that opens an MCP session through `SessionAdmission`."""

    def __init__(self, app: ASGIApp, admission: SessionAdmission | None = None) -> None:
        self._app = app
        self._admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        agent = scope.get(AGENT_SCOPE_KEY)
        agent = agent if isinstance(agent, str) else None
        token = _requester.set(agent)
        try:
            if self._admission is None or scope["path"] != MCP_PATH or not _may_open_session(scope):
                await self._app(scope, receive, send)
            else:
                await self._admission.serve_opening(_principal(agent, scope), self._app, scope, receive, send)
        finally:
            _requester.reset(token)


def _may_open_session(scope: Scope) -> bool:
    """Whether the SDK would open a session for this request: no session id, and not a request of the
    sessionless protocol revisions (their `MCP-Protocol-Version` is no handshake version)."""
    for name, value in scope["headers"]:
        if name == _SESSION_HEADER:
            return False
        if name == _VERSION_HEADER and value.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS:
            return False
    return True


def _principal(agent: str | None, scope: Scope) -> str:
    if agent is not None:
        return f"agent:{agent}"
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


@dataclass
class _Request:
    """One HTTP request of a session, as the parse hook sees it."""

    session: SessionRequests
    key: str | None = None  # the request id this request claimed, released when it is answered
    duplicate: RequestId | None = None


_current: ContextVar[_Request | None] = ContextVar("handoff_session_request", default=None)


class SessionRequests:
    """One session's JSON-RPC request ids in flight, and whether it made a request since initialize.

    Ids are compared as the SDK compares them: its transport keys streams by `str(id)`, its dispatcher
    takes "7" and 7 for one id; both collisions are refused.
    """

    def __init__(self, transport: StreamableHTTPServerTransport, idle_seconds: float) -> None:
        self._transport = transport
        self._idle_seconds = idle_seconds
        self._in_flight: set[str] = set()
        self.used = False
        self._handle = transport.handle_request
        self._validate = transport._validate_request_headers
        transport.handle_request = self.handle_request  # type: ignore[method-assign]
        transport._validate_request_headers = self.validate_request_headers  # type: ignore[method-assign]

    async def handle_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "GET":
            self.mark_used()
        request = _Request(self)
        token = _current.set(request)
        try:
            await self._handle(scope, receive, send)
        finally:
            _current.reset(token)
            if request.key is not None:
                self._in_flight.discard(request.key)

    def mark_used(self) -> None:
        if not self.used:
            self.used = True
            self._transport._idle_timeout = self._idle_seconds

    def claim(self, request: _Request, message: JSONRPCRequest) -> None:
        """Called where the SDK parses the body, before it registers the request's stream."""
        if message.method != "initialize":
            self.mark_used()
        key = str(coerce_request_id(message.id))
        if key not in self._in_flight and str(message.id) not in self._transport._request_streams:
            self._in_flight.add(key)
            request.key = key
            return
        request.duplicate = message.id
        if message.method == "initialize":
            # An initialize skips the check below (`validate_request_headers`): refused as invalid here.
            error = PydanticCustomError("duplicate_request_id", _duplicate_message(message.id))
            details: list[InitErrorDetails] = [{"type": error, "loc": ("id",), "input": message.id}]
            raise ValidationError.from_exception_data("JSONRPCRequest", details)

    async def validate_request_headers(self, request: Request, send: Send) -> bool:
        if not await self._validate(request, send):
            return False
        current = _current.get()
        if current is None or current.duplicate is None:
            return True
        body = {
            "jsonrpc": "2.0",
            "id": current.duplicate,
            "error": {"code": INVALID_REQUEST, "message": _duplicate_message(current.duplicate)},
        }
        session = (self._transport.mcp_session_id or "").encode()
        await _send_json(send, 400, body, [(_SESSION_HEADER, session)])
        return False


def _duplicate_message(request_id: RequestId) -> str:
    return (
        f"request id {json.dumps(request_id)} is already in flight in this session: wait for its answer, "
        "or send this request with an id of its own"
    )


class _ClaimingAdapter:
    """The SDK transport's message parser, plus the id claim of the session whose request it parses."""

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter

    def validate_python(self, value: Any, /, **kwargs: Any) -> Any:
        message = self._adapter.validate_python(value, **kwargs)
        request = _current.get()
        if request is not None and isinstance(message, JSONRPCRequest):
            request.session.claim(request, message)
        return message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)


def _hook_parsing() -> None:
    parser = sdk_transport.jsonrpc_message_adapter  # type: ignore[attr-defined]
    if not isinstance(parser, _ClaimingAdapter):
        sdk_transport.jsonrpc_message_adapter = _ClaimingAdapter(parser)  # type: ignore[attr-defined,assignment]


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
