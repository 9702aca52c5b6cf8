"""Resuming a stream on a replica that does not hold its MCP session.

The SDK keeps a session in the memory of the replica that opened it and answers 404 for it
everywhere else, a reconnect with `Last-Event-ID` included. The events are in the database,
though, so when the SDK is about to answer such a reconnect with 404, this middleware serves it
instead: it replays what the stream stored after the given event and follows it for new events (a
poll of the database) until the answer arrives or `FOLLOW_SECONDS` pass; then it closes, and the
client comes back after the `retry` interval with its newest event id. The same checks hold as on
the session's own replica: the session id (by fingerprint) and the authenticated agent must be the
ones that wrote the stream, so an id that is unknown, forged or someone else's still gets the 404.

Only a reconnect is served this way: any other request of that session still needs its replica.
"""

from __future__ import annotations

import json

import anyio
from mcp.server.streamable_http import LAST_EVENT_ID_HEADER, MCP_SESSION_ID_HEADER
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handoff.domain.streams import StreamOwner, StreamPosition, fingerprint
from handoff.http.admission import requester
from handoff.logs import get_logger
from handoff.services.streams import StreamService

log = get_logger("handoff.http")

# How long a reconnect served here follows a stream still being written before it closes (the
# client reconnects after `retry`), and how often it looks for new events meanwhile.
FOLLOW_SECONDS = 15.0
POLL_SECONDS = 0.1


class ResumeAnywhere:
    def __init__(
        self, app: ASGIApp, service: StreamService, security: TransportSecuritySettings, *, path: str = "/mcp"
    ) -> None:
        self._app = app
        self._service = service
        self._security = TransportSecurityMiddleware(security)
        self._path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_reconnect(scope, self._path):
            await self._app(scope, receive, send)
            return
        refused: list[Message] = []

        async def unless_unknown_session(message: Message) -> None:
            if refused or (message["type"] == "http.response.start" and message["status"] == 404):
                refused.append(message)  # held back: the database may still know the stream
                return
            await send(message)

        await self._app(scope, receive, unless_unknown_session)
        if not refused:
            return
        request = Request(scope, receive)
        position = None
        if await self._security.validate_request(request, is_post=False) is None:
            session_id = request.headers[MCP_SESSION_ID_HEADER]
            owner = StreamOwner(fingerprint(session_id), requester())
            position = await self._service.locate(owner, request.headers[LAST_EVENT_ID_HEADER])
        if position is None:
            for message in refused:  # the SDK's own 404
                await send(message)
            return
        log.info("stream resumed on a replica that does not hold its session", stream=position.stream_key)
        await self._follow(owner, position, session_id, receive, send)

    async def _follow(
        self, owner: StreamOwner, position: StreamPosition, session_id: str, receive: Receive, send: Send
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache, no-transform"),
                    (MCP_SESSION_ID_HEADER.encode(), session_id.encode()),
                ],
            }
        )
        retry = self._service.settings.retry_ms
        # The stream's position first, with the retry hint, as the SDK primes a stream.
        await _event(send, f"id: {position.event_id}\nretry: {retry}\ndata: \n\n")
        async with anyio.create_task_group() as tg:

            async def until_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(until_disconnect)
            with anyio.move_on_after(FOLLOW_SECONDS):
                answered = False
                while not answered:
                    for event in await self._service.events_after(owner, position):
                        position = StreamPosition(position.stream_id, position.stream_key, _seq(event.event_id))
                        if event.payload is None:
                            continue
                        await _event(send, f"event: message\nid: {event.event_id}\ndata: {event.payload}\n\n")
                        answered = _is_answer(event.payload, position.stream_id)
                    if not answered:
                        await anyio.sleep(POLL_SECONDS)
            tg.cancel_scope.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _is_reconnect(scope: Scope, path: str) -> bool:
    if scope["type"] != "http" or scope["method"] != "GET" or scope["path"].rstrip("/") != path:
        return False
    names = {name for name, _ in scope["headers"]}
    return LAST_EVENT_ID_HEADER.encode() in names and MCP_SESSION_ID_HEADER.encode() in names


def _seq(event_id: str) -> int:
    return int(event_id.rsplit(".", 1)[1])


def _is_answer(payload: str, stream_id: str) -> bool:
    """The answer to the request a stream belongs to ends it."""
    message = json.loads(payload)
    return ("result" in message or "error" in message) and str(message.get("id")) == stream_id


async def _event(send: Send, text: str) -> None:
    await send({"type": "http.response.body", "body": text.encode(), "more_body": True})
