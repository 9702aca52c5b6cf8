"""Resource subscriptions, for both protocol eras, fed by the container's change feed.

- 2025-era connections (the `initialize` handshake: stdio, or HTTP with `Mcp-Session-Id` and a GET
  stream): `resources/subscribe` and `resources/unsubscribe`, then `notifications/resources/updated`
  for each subscribed URI and `notifications/resources/list_changed` (to every such connection)
  when a session appears. Subscriptions belong to the connection and go when it closes.
- 2026-07-28 connections: `subscriptions/listen`, whose response stream carries the same
  notifications (the SDK's `ListenHandler`, fed by `FeedBus` below); `resources/subscribe` does not
  exist in that revision.

Either way a URI is checked before it is accepted, as a read would be: it must name a resource of
ours that exists (unknown → not_found) and that the caller may read (another agent's inbox under
token authentication → forbidden). Memory is bounded: at most `max_subscriptions_per_connection`
URIs per connection or listen stream, and what waits to be sent to a connection is a set of URIs
(a notice is "read it again", so repeats coalesce) drained by a task of its own, so a client that
does not read never holds up an append or anyone else's notices.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import anyio
import anyio.abc
import mcp_types as types
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.subscriptions import ListenHandler, ResourcesListChanged, ResourceUpdated, ServerEvent
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from handoff.domain.notices import Change, Topic
from handoff.domain.validation import validate_agent, validate_session_key
from handoff.errors import HandoffError, InvalidInput, InvalidState, NotFound
from handoff.logs import get_logger
from handoff.mcp import identity
from handoff.mcp.errors import rpc_error
from handoff.mcp.readiness import ContainerGate

if TYPE_CHECKING:
    from handoff.container import Container

log = get_logger(__name__)

SESSIONS_URI = "handoff://sessions"
STATE_KEY = "handoff.subscriber"
SEND_SECONDS = 5.0  # one notice to one client; past it the client is not reading and we move on
_SESSION_FACETS = ("", "/context", "/lifecycle")
_SAFE = ":@!$&'()*+,;=-._~"  # RFC 3986 pchar: kept as is, so ordinary keys round-trip unchanged


def _segment(value: str) -> str:
    return quote(value, safe=_SAFE)


def uris_of(change: Change) -> list[str]:
    """The canonical URIs of the resources a change may have changed."""
    if change.topic is Topic.SESSION:
        return [f"{SESSIONS_URI}/{_segment(change.key)}{facet}" for facet in _SESSION_FACETS]
    if change.topic is Topic.HANDOFF:
        return [f"handoff://handoffs/{_segment(change.key)}"]
    if change.topic is Topic.INBOX:
        return [f"handoff://agents/{_segment(change.key)}/inbox"]
    return [SESSIONS_URI]


def parse_uri(uri: str, *, max_key_length: int) -> tuple[Change, str]:
    """(what a subscription to `uri` watches, its canonical URI). A query (`?cursor=…`) names a page
    of the same resource, so it watches the same thing. Raises NotFound for anything not ours."""
    unknown = NotFound(
        f"no resource {uri[:200]!r} to subscribe to: subscribable are {SESSIONS_URI}, "
        "handoff://sessions/{session_key}[/context|/lifecycle], handoff://handoffs/{handoff_id} and "
        "handoff://agents/{agent}/inbox",
        {"field": "uri"},
    )
    parts = urlsplit(uri)
    if parts.scheme != "handoff" or parts.fragment:
        raise unknown
    segments = [unquote(s) for s in parts.path.split("/")[1:]] if parts.path else []
    if parts.netloc == "sessions":
        if not segments:
            return Change.sessions(), SESSIONS_URI
        facet = "/" + segments[1] if len(segments) == 2 else ""
        if len(segments) > 2 or facet not in _SESSION_FACETS:
            raise unknown
        key = validate_session_key(segments[0], max_length=max_key_length)
        return Change.session(key), f"{SESSIONS_URI}/{_segment(key)}{facet}"
    if parts.netloc == "handoffs" and len(segments) == 1 and segments[0]:
        return Change.handoff(segments[0]), f"handoff://handoffs/{_segment(segments[0])}"
    if parts.netloc == "agents" and len(segments) == 2 and segments[1] == "inbox":
        agent = validate_agent(segments[0], field="agent", max_length=max_key_length)
        return Change.inbox(agent), f"handoff://agents/{_segment(agent)}/inbox"
    raise unknown


class Subscriber:
    """One 2025-era connection: its subscribed URIs and the notices waiting to go to it."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection  # its own channel: stdout, or the HTTP session's GET stream
        self.uris: dict[str, Change] = {}
        self.pending: dict[str, None] = {}  # URIs to notify, oldest first; "" = the list changed
        self.sending = False
        self.closed = False
        self.sent = 0


class SubscriptionRegistry:
    """Every connection's subscriptions on this server, and the bridge from the change feed."""

    def __init__(self, container: Container | ContainerGate, *, max_per_connection: int, max_streams: int) -> None:
        self._container = container
        self.max_per_connection = max_per_connection
        self.bus = FeedBus()
        self.listen_handler = ListenHandler(self.bus, max_subscriptions=max_streams)
        self._subscribers: set[Subscriber] = set()
        self._watchers: dict[Change, dict[Subscriber, None]] = {}
        self._task_groups: list[anyio.abc.TaskGroup] = []
        self._attached = False

    # -- lifetime ------------------------------------------------------------------------------
    @asynccontextmanager
    async def hosting(self) -> AsyncIterator[None]:
        """The task group the per-connection senders run in (the server's lifespan enters it)."""
        async with anyio.create_task_group() as tg:
            self._task_groups.append(tg)
            try:
                yield
            finally:
                self._task_groups.remove(tg)
                tg.cancel_scope.cancel()

    def attach(self) -> None:
        """Start hearing the feed, once the container is there (over stdio it comes up later)."""
        if self._attached or (isinstance(self._container, ContainerGate) and not self._container.ready):
            return
        self._attached = True
        self._container.changes.listen(self._on_change)

    def close_streams(self) -> None:
        """End every listen stream gracefully (each sends its final result): the server is stopping."""
        self.listen_handler.close()

    async def ready(self) -> None:
        if isinstance(self._container, ContainerGate) and not self._container.ready:
            await self._container.wait()
        self.attach()

    # -- connections ---------------------------------------------------------------------------
    def subscriber(self, ctx: ServerRequestContext[Any, Any]) -> Subscriber | None:
        """The 2025-era connection a request came on, registered the first time it is seen (so it
        hears `list_changed`); None for a 2026-07-28 connection, which listens instead."""
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return None
        # The SDK hands handlers a per-request session; the connection behind it is the only
        # place that lives as long as the client does and that tells us when it goes.
        connection = getattr(ctx.session, "_connection", None)
        if connection is None:
            return None
        found = connection.state.get(STATE_KEY)
        if isinstance(found, Subscriber):
            return found
        subscriber = Subscriber(connection)
        connection.state[STATE_KEY] = subscriber
        connection.exit_stack.callback(self._drop, subscriber)
        self._subscribers.add(subscriber)
        self.attach()
        return subscriber

    def _drop(self, subscriber: Subscriber) -> None:
        subscriber.closed = True
        subscriber.pending.clear()
        for change in subscriber.uris.values():
            self._unwatch(change, subscriber)
        subscriber.uris.clear()
        self._subscribers.discard(subscriber)

    @property
    def connections(self) -> int:
        return len(self._subscribers)

    @property
    def watched(self) -> int:
        """Distinct things some 2025-era connection watches (for tests: nothing is left behind)."""
        return len(self._watchers)

    # -- checks --------------------------------------------------------------------------------
    async def check(self, uri: str) -> tuple[Change, str]:
        """What `uri` watches, once it is known to exist and the caller may read it."""
        c = self._container
        change, canonical = parse_uri(uri, max_key_length=c.settings.limits.max_key_length)
        await self.ready()
        if change.topic is Topic.SESSION:
            await c.sessions.get(change.key)
        elif change.topic is Topic.HANDOFF:
            await c.handoffs.get(change.key)
        elif change.topic is Topic.INBOX:
            identity.acting_agent(change.key, field="agent")  # with a token: only your own inbox
        return change, canonical

    # -- resources/subscribe, resources/unsubscribe (2025 era) ----------------------------------
    async def subscribe(self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams) -> Any:
        try:
            subscriber = self.subscriber(ctx)
            if subscriber is None:
                raise InvalidState("resources/subscribe is not part of protocol 2026-07-28: use subscriptions/listen")
            change, _ = await self.check(params.uri)
            if params.uri not in subscriber.uris:
                if len(subscriber.uris) >= self.max_per_connection:
                    raise InvalidInput(
                        f"this connection already holds {self.max_per_connection} subscriptions, the most "
                        "allowed (HANDOFF_NOTIFY__MAX_SUBSCRIPTIONS_PER_CONNECTION); unsubscribe from some first",
                        {"field": "uri", "limit": self.max_per_connection},
                    )
                subscriber.uris[params.uri] = change
                self._watchers.setdefault(change, {})[subscriber] = None
        except HandoffError as error:
            raise rpc_error(error) from None
        return types.EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams) -> Any:
        subscriber = self.subscriber(ctx)
        if subscriber is not None:
            change = subscriber.uris.pop(params.uri, None)
            subscriber.pending.pop(params.uri, None)
            if change is not None and change not in subscriber.uris.values():
                self._unwatch(change, subscriber)
        return types.EmptyResult()  # unsubscribing from what one does not hold is a no-op, as in the spec

    def _unwatch(self, change: Change, subscriber: Subscriber) -> None:
        watchers = self._watchers.get(change)
        if watchers is not None:
            watchers.pop(subscriber, None)
            if not watchers:
                del self._watchers[change]

    # -- subscriptions/listen (2026-07-28) -------------------------------------------------------
    async def listen(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        wanted = params.notifications.resource_subscriptions or []
        try:
            if len(wanted) > self.max_per_connection:
                raise InvalidInput(
                    f"{len(wanted)} resource subscriptions in one listen request; the most is "
                    f"{self.max_per_connection} (HANDOFF_NOTIFY__MAX_SUBSCRIPTIONS_PER_CONNECTION)",
                    {"field": "resourceSubscriptions", "limit": self.max_per_connection},
                )
            await self.ready()
            canonical = [(await self.check(uri))[1] for uri in wanted]
        except HandoffError as error:
            raise rpc_error(error) from None
        honored = params.notifications.model_copy(update={"resource_subscriptions": canonical or None})
        return await self.listen_handler(ctx, params.model_copy(update={"notifications": honored}))

    # -- delivery ------------------------------------------------------------------------------
    def _on_change(self, change: Change) -> None:
        """Called by the feed for every committed change: enqueue only, never wait."""
        self.bus.deliver(change)
        if change.topic is Topic.SESSIONS:
            for subscriber in self._subscribers:
                self._queue(subscriber, "")
        for subscriber in self._watchers.get(change, ()):
            for uri, watched in subscriber.uris.items():
                if watched == change:
                    self._queue(subscriber, uri)

    def _queue(self, subscriber: Subscriber, uri: str) -> None:
        subscriber.pending[uri] = None
        if not subscriber.sending and self._task_groups:
            subscriber.sending = True
            self._task_groups[-1].start_soon(self._send_all, subscriber)

    async def _send_all(self, subscriber: Subscriber) -> None:
        try:
            while subscriber.pending and not subscriber.closed:
                uri = next(iter(subscriber.pending))
                del subscriber.pending[uri]
                with anyio.move_on_after(SEND_SECONDS):
                    # Connection.notify drops what a closed channel cannot take instead of raising.
                    if uri == "":
                        await subscriber.connection.send_resource_list_changed()
                    else:
                        await subscriber.connection.send_resource_updated(uri)
                    subscriber.sent += 1
        except Exception:  # this sender's boundary: one client's failure must not end the others'
            log.exception("sending a change notice failed")
        finally:
            subscriber.sending = False


class FeedBus:
    """The SDK's `SubscriptionBus` for listen streams, fed with our changes (as canonical URIs)."""

    def __init__(self) -> None:
        self._listeners: dict[object, Callable[[ServerEvent], None]] = {}

    def deliver(self, change: Change) -> None:
        events: list[ServerEvent] = [ResourceUpdated(uri=uri) for uri in uris_of(change)]
        if change.topic is Topic.SESSIONS:
            events.append(ResourcesListChanged())
        for listener in list(self._listeners.values()):
            for event in events:
                try:
                    listener(event)  # the SDK's listener filters and buffers (bounded) without waiting
                except Exception:  # the fan-out boundary: one stream never starves the others
                    log.exception("listen stream listener failed")

    async def publish(self, event: ServerEvent) -> None:
        for listener in list(self._listeners.values()):
            listener(event)
        await anyio.lowlevel.checkpoint()

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        token = object()
        self._listeners[token] = listener

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe


class SeenConnections:
    """Middleware: registers every 2025-era connection on its first request, so it hears list_changed."""

    def __init__(self, registry: SubscriptionRegistry) -> None:
        self._registry = registry

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.request_id is not None and ctx.method != "initialize":
            self._registry.subscriber(ctx)
        return await call_next(ctx)
