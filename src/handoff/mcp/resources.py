"""Resources (application/json): everything here is readable by a tool too."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from mcp.server.mcpserver import MCPServer

from handoff.domain.models import HandoffStatus, SessionStatus
from handoff.errors import InvalidInput
from handoff.mcp.errors import dump, rpc_errors
from handoff.mcp.identity import acting_agent
from handoff.mcp.schemas import (
    ContextPageResult,
    EntryOut,
    GetSessionResult,
    HandoffItemOut,
    HandoffListResult,
    HandoffOut,
    LifecycleEventOut,
    LifecycleResult,
    SessionListResult,
    SessionOut,
)

if TYPE_CHECKING:  # only the type: importing the container would load the storage layer
    from handoff.container import Container

JSON = "application/json"
SESSIONS_PAGE = 100
CONTEXT_PAGE = 100
INBOX_PAGE = 50


class ContextResourcePage(ContextPageResult):
    next_uri: str | None = None


class SessionsResourcePage(SessionListResult):
    next_uri: str | None = None


class InboxResourcePage(HandoffListResult):
    agent: str
    next_uri: str | None = None


def register_resources(server: MCPServer, c: Container) -> None:
    async def _sessions_page(cursor: str | None) -> str:
        page = await c.sessions.list_sessions(
            statuses=[SessionStatus.ACTIVE, SessionStatus.DORMANT],
            agent=None,
            cursor=cursor,
            limit=SESSIONS_PAGE,
        )
        body = SessionsResourcePage(
            sessions=[SessionOut.of(s) for s in page.sessions],
            next_cursor=page.next_cursor,
            next_uri=f"handoff://sessions?cursor={quote(page.next_cursor)}" if page.next_cursor else None,
        )
        return dump(body)

    @server.resource("handoff://sessions", name="sessions", title="Live sessions", mime_type=JSON)
    @rpc_errors
    async def live_sessions() -> str:
        """Active and dormant sessions, oldest first (first page; follow next_uri for more)."""
        return await _sessions_page(None)

    @server.resource("handoff://sessions{?cursor}", name="sessions_page", title="Live sessions (page)", mime_type=JSON)
    @rpc_errors
    async def live_sessions_page(cursor: str | None = None) -> str:
        """A further page of live sessions."""
        return await _sessions_page(cursor)

    @server.resource("handoff://sessions/{session_key}", name="session", title="Session", mime_type=JSON)
    @rpc_errors
    async def session(session_key: str) -> str:
        """One session: status, owner, participants, counts by entry type."""
        view = await c.sessions.get(session_key)
        return dump(GetSessionResult(session=SessionOut.of(view.session, view.counts_by_type)))

    @server.resource(
        "handoff://sessions/{session_key}/context{?cursor,limit}",
        name="session_context",
        title="Session context",
        mime_type=JSON,
    )
    @rpc_errors
    async def session_context(session_key: str, cursor: str | None = None, limit: str | None = None) -> str:
        """A page of a session's entries in order; next_uri reads the next page."""
        size = _page_size(limit)
        page = await c.context.page(session_key, cursor=cursor, limit=size, context_types=None)
        next_uri = None
        if page.next_cursor:
            next_uri = f"handoff://sessions/{session_key}/context?cursor={quote(page.next_cursor)}"
            if limit is not None:
                next_uri += f"&limit={size}"
        body = ContextResourcePage(
            session=SessionOut.of(page.session, page.counts_by_type),
            entries=[EntryOut.of(e) for e in page.entries],
            next_cursor=page.next_cursor,
            next_uri=next_uri,
        )
        return dump(body)

    @server.resource(
        "handoff://sessions/{session_key}/lifecycle",
        name="session_lifecycle",
        title="Lifecycle",
        mime_type=JSON,
    )
    @rpc_errors
    async def session_lifecycle(session_key: str) -> str:
        """State and ownership changes of a session, oldest first."""
        found, events = await c.sessions.lifecycle(session_key)
        return dump(
            LifecycleResult(
                session_key=found.session_key,
                status=found.status.value,
                events=[LifecycleEventOut.of(e) for e in events],
            )
        )

    @server.resource("handoff://handoffs/{handoff_id}", name="handoff", title="Handoff", mime_type=JSON)
    @rpc_errors
    async def handoff(handoff_id: str) -> str:
        """A handoff: brief, summary, instructions, resource URIs, status and answers."""
        return dump(HandoffOut.of(await c.handoffs.get(handoff_id)))

    @server.resource("handoff://agents/{agent}/inbox{?cursor}", name="inbox", title="Handoff inbox", mime_type=JSON)
    @rpc_errors
    async def inbox(agent: str, cursor: str | None = None) -> str:
        """Pending handoffs addressed to an agent, newest first; next_uri reads the next page."""
        agent = acting_agent(agent, field="agent") or agent  # with a token: your own inbox only
        page = await c.handoffs.list_handoffs(
            target_agent=agent,
            source_agent=None,
            status=HandoffStatus.PENDING.value,
            session_key=None,
            cursor=cursor,
            limit=INBOX_PAGE,
        )
        next_uri = None
        if page.next_cursor:
            next_uri = f"handoff://agents/{quote(agent, safe='')}/inbox?cursor={quote(page.next_cursor)}"
        return dump(
            InboxResourcePage(
                agent=agent,
                handoffs=[HandoffItemOut.of_line(line) for line in page.handoffs],
                next_cursor=page.next_cursor,
                next_uri=next_uri,
            )
        )


def _page_size(limit: str | None) -> int:
    if limit is None:
        return CONTEXT_PAGE
    if not (limit.isascii() and limit.isdigit()):  # `²` is a digit to str.isdigit, not to int()
        raise InvalidInput(f"limit must be a whole number, got {limit!r}", {"field": "limit"})
    return int(limit)
