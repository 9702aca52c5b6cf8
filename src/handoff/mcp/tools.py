"""Tool handlers: validate (schema), call one service, shape the result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field, WithJsonSchema

from handoff.config import LimitSettings
from handoff.mcp.errors import tool_errors
from handoff.mcp.identity import acting_agent, current_caller
from handoff.mcp.schemas import (
    NOTE_SCHEMA,
    ContextPageResult,
    ContextTypeName,
    DeclineHandoffResult,
    EntryOut,
    EntryReceipt,
    GetSessionResult,
    HandoffAnswerResult,
    HandoffItemOut,
    HandoffListResult,
    HandoffOut,
    HandoffStatusName,
    HandoffTypeName,
    LifecycleEventOut,
    LifecycleResult,
    RegisterSessionResult,
    RequestHandoffResult,
    RetentionName,
    SessionListResult,
    SessionOut,
    SessionStateOut,
    SessionStatusName,
    UpdateContextResult,
)
from handoff.services.sessions import parse_session_status

if TYPE_CHECKING:  # only the type: importing the container would load the storage layer
    from handoff.container import Container

# The services enforce settings.limits.max_key_length and answer a longer key with `invalid_input`
# naming the field and the limit; the schema states that limit's default (also the width of the key
# columns) instead of a number of its own, and leaves the check to them.
MAX_KEY_LENGTH: int = LimitSettings.model_fields["max_key_length"].default
SessionKey = Annotated[
    str,
    Field(
        description=f"Client-chosen unique key: letters, digits and . _ : @ + - (max {MAX_KEY_LENGTH}).",
        json_schema_extra={"maxLength": MAX_KEY_LENGTH},
    ),
]
HandoffId = Annotated[str, Field(description="The handoff_id from request_handoff, list_handoffs or the inbox.")]
AnsweringAgent = Annotated[str, Field(description="You: the agent the handoff is addressed to (its target_agent).")]
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)


def register_tools(server: MCPServer, c: Container) -> None:
    @tool_errors
    async def register_session(
        session_key: SessionKey,
        source_agent: Annotated[str, Field(description="The agent starting the session; it becomes the owner.")],
        metadata: Annotated[
            dict[str, Any] | None, Field(description="Free-form JSON object stored with the session.")
        ] = None,
        ttl_seconds: Annotated[
            int | None,
            Field(description="Seconds without activity before the session expires; default from settings."),
        ] = None,
        retention_policy: Annotated[
            RetentionName | None,
            Field(description="How long history is kept once the session stops; default standard."),
        ] = None,
    ) -> RegisterSessionResult:
        """Create a session under a unique key, owned by source_agent and active until its TTL runs out."""
        source = acting_agent(source_agent, field="source_agent") or source_agent
        session = await c.sessions.register(session_key, source, metadata or {}, ttl_seconds, retention_policy)
        return RegisterSessionResult(session=SessionOut.of(session, {}))

    @tool_errors
    async def update_context(
        session_key: SessionKey,
        context_type: Annotated[
            ContextTypeName,
            Field(
                description=(
                    "message: prose from the user or an agent; tool_call: a tool/command and/or its output; "
                    "file: a file created, edited, reverted or deleted; system: anything else."
                )
            ),
        ],
        content: Annotated[
            str,
            Field(
                description=(
                    "The entry's text as written: the message, the command and its output (test-runner "
                    "output is read for results), the diff. Up to the server's size limit (8 MiB default)."
                )
            ),
        ],
        metadata: Annotated[
            dict[str, Any] | None,
            Field(
                description=(
                    "JSON object; these keys sharpen the handoff brief: role (user|assistant) on messages; "
                    "tool, command, exit_code, is_error, tool_use_id on tool calls; path and action "
                    "(created|edited|reverted|deleted) on files; kind (decision|rejected|constraint|task|"
                    "task_done|test_failure|test_pass|request) to mark an entry explicitly."
                )
            ),
        ] = None,
        agent: Annotated[
            str | None,
            Field(
                description=(
                    "Who writes (you). May be left out only while the owner is the session's sole "
                    "participant; after a handoff it is required."
                )
            ),
        ] = None,
        idempotency_key: Annotated[
            str | None,
            Field(description="Retries with the same key return the original entry instead of a new one."),
        ] = None,
    ) -> UpdateContextResult:
        """Record one step of your work in a session: a user request, your reasoning or decision, a command
        and its output, a file change. Call it as you go (the user's words verbatim, test output as printed),
        so a later handoff brief can carry your decisions, failing tests and open tasks. Each entry gets the
        next gap-free sequence number."""
        writer = acting_agent(agent)
        result = await c.context.append(session_key, context_type, content, metadata or {}, writer, idempotency_key)
        return UpdateContextResult(
            entry=EntryReceipt.of(result.entry, replayed=result.replayed),
            session=SessionStateOut.of(result.session),
        )

    @tool_errors
    async def request_handoff(
        session_key: SessionKey,
        target_agent: Annotated[str, Field(description="The agent that takes over or joins.")],
        handoff_type: Annotated[
            HandoffTypeName,
            Field(
                description=(
                    "context_transfer: target gets a read copy, owner keeps writing; full_handoff: ownership "
                    "moves to target and the source stops writing; collaboration: both may write."
                )
            ),
        ] = "context_transfer",
        request_data: Annotated[
            dict[str, Any] | None, Field(description="Free-form JSON the target should see (e.g. ticket ids).")
        ] = None,
        token_budget: Annotated[
            int | None, Field(description="Upper bound on the brief's size in estimated tokens (64..32000).")
        ] = None,
        note: Annotated[Any, WithJsonSchema(NOTE_SCHEMA), Field(description=NOTE_SCHEMA["description"])] = None,
    ) -> RequestHandoffResult:
        """Hand a session to another agent when you stop (context full, done with your part, blocked). Returns
        a brief within token_budget (your note first, then what the server extracted: the task, constraints,
        plan, failing tests, errors, decisions, rejected approaches, files, recent activity) and exact
        instructions for fetching the full history. Write a note: the prompt prepare_handoff shows what the
        server already knows so you only add what it cannot see."""
        view = await c.handoffs.request(
            session_key,
            target_agent,
            handoff_type,
            request_data or {},
            token_budget,
            note=note,
            caller=acting_agent(None),
        )
        return RequestHandoffResult(handoff=HandoffOut.of(view))

    @tool_errors
    async def get_context(
        session_key: SessionKey,
        cursor: Annotated[str | None, Field(description="next_cursor from the previous page.")] = None,
        limit: Annotated[int, Field(description="Entries per page (1..500).")] = 100,
        context_types: Annotated[
            list[ContextTypeName] | None, Field(description="Only these entry types (all when omitted).")
        ] = None,
    ) -> ContextPageResult:
        """Read a session's entries in sequence order, one page at a time (archived sessions too)."""
        page = await c.context.page(session_key, cursor=cursor, limit=limit, context_types=context_types)
        return ContextPageResult(
            session=SessionOut.of(page.session, page.counts_by_type),
            entries=[EntryOut.of(e) for e in page.entries],
            next_cursor=page.next_cursor,
        )

    @tool_errors
    async def get_session(session_key: SessionKey) -> GetSessionResult:
        """A session's metadata, status, owner, participants and entry counts by type."""
        view = await c.sessions.get(session_key)
        return GetSessionResult(session=SessionOut.of(view.session, view.counts_by_type))

    @tool_errors
    async def list_sessions(
        status: Annotated[
            list[SessionStatusName] | None,
            Field(description="Only sessions in these states (all when omitted)."),
        ] = None,
        agent: Annotated[str | None, Field(description="Only sessions this agent takes part in.")] = None,
        cursor: Annotated[str | None, Field(description="next_cursor from the previous page.")] = None,
        limit: Annotated[int, Field(description="Sessions per page (1..500).")] = 50,
    ) -> SessionListResult:
        """List sessions, oldest first, optionally filtered by state and participating agent."""
        statuses = [parse_session_status(s) for s in status] if status else None
        page = await c.sessions.list_sessions(statuses=statuses, agent=agent, cursor=cursor, limit=limit)
        return SessionListResult(sessions=[SessionOut.of(s) for s in page.sessions], next_cursor=page.next_cursor)

    @tool_errors
    async def get_handoff(handoff_id: HandoffId) -> RequestHandoffResult:
        """Read a handoff: brief, summary, instructions, resource URIs, and where it stands (status
        pending/accepted/completed/declined/expired, with who answered and when)."""
        return RequestHandoffResult(handoff=HandoffOut.of(await c.handoffs.get(handoff_id)))

    @tool_errors
    async def list_handoffs(
        target_agent: Annotated[
            str | None, Field(description="Only handoffs addressed to this agent (your inbox: your own name).")
        ] = None,
        source_agent: Annotated[str | None, Field(description="Only handoffs made by this agent.")] = None,
        status: Annotated[
            HandoffStatusName | None, Field(description="Only handoffs in this state (pending: waiting for an answer).")
        ] = None,
        session_key: Annotated[str | None, Field(description="Only handoffs of this session.")] = None,
        cursor: Annotated[str | None, Field(description="next_cursor from the previous page.")] = None,
        limit: Annotated[int, Field(description="Handoffs per page (1..500).")] = 50,
    ) -> HandoffListResult:
        """Find handoffs without knowing their ids, newest first: what was handed to you
        (target_agent=<you>, status="pending"), what you handed off and whether it was accepted
        (source_agent=<you>), or a session's handoffs. Each item has the summary and status; read the
        brief with get_handoff."""
        page = await c.handoffs.list_handoffs(
            target_agent=target_agent,
            source_agent=source_agent,
            status=status,
            session_key=session_key,
            cursor=cursor,
            limit=limit,
        )
        return HandoffListResult(
            handoffs=[HandoffItemOut.of_line(line) for line in page.handoffs], next_cursor=page.next_cursor
        )

    @tool_errors
    async def accept_handoff(handoff_id: HandoffId, agent: AnsweringAgent) -> RequestHandoffResult:
        """Take up a pending handoff addressed to you, before you start on it. Returns the handoff with its
        brief and instructions. Only the target may accept, and only once; a handoff not accepted in time
        expires."""
        view = await c.handoffs.accept(handoff_id, acting_agent(agent) or agent)
        return RequestHandoffResult(handoff=HandoffOut.of(view))

    @tool_errors
    async def decline_handoff(
        handoff_id: HandoffId,
        agent: AnsweringAgent,
        reason: Annotated[
            str, Field(description="Why you do not take it (required): the agent that handed it off reads this.")
        ],
    ) -> DeclineHandoffResult:
        """Turn down a pending handoff addressed to you, saying why. What it granted goes back: a declined
        full_handoff returns the session to the agent that handed it off, a declined collaboration ends
        your write access."""
        view, owner = await c.handoffs.decline(handoff_id, acting_agent(agent) or agent, reason)
        return DeclineHandoffResult(handoff=HandoffItemOut.of_view(view), owner_agent=owner)

    @tool_errors
    async def complete_handoff(
        handoff_id: HandoffId,
        agent: AnsweringAgent,
        summary: Annotated[
            str | None, Field(description="What you did and what is left, for the agent that handed it off.")
        ] = None,
    ) -> HandoffAnswerResult:
        """Report an accepted handoff addressed to you as done. The session stays as it is (end it with
        complete_session if the work as a whole is finished)."""
        view = await c.handoffs.complete(handoff_id, acting_agent(agent) or agent, summary)
        return HandoffAnswerResult(handoff=HandoffItemOut.of_view(view))

    @tool_errors
    async def get_lifecycle(session_key: SessionKey) -> LifecycleResult:
        """A session's lifecycle events (state and ownership changes), oldest first."""
        session, events = await c.sessions.lifecycle(session_key)
        return LifecycleResult(
            session_key=session.session_key,
            status=session.status.value,
            events=[LifecycleEventOut.of(e) for e in events],
        )

    @tool_errors
    async def complete_session(
        session_key: SessionKey,
        agent: Annotated[str | None, Field(description="Must be the owner; defaults to the owner.")] = None,
    ) -> GetSessionResult:
        """Mark a session's work as done: it becomes read-only (completed)."""
        session = await c.sessions.complete(session_key, acting_agent(agent))
        return GetSessionResult(session=SessionOut.of(session))

    @tool_errors
    async def set_retention_policy(
        session_key: SessionKey,
        retention_policy: Annotated[RetentionName, Field(description="short, standard, extended or legal_hold.")],
        actor: Annotated[str, Field(description="Who changes it (recorded in the lifecycle events).")],
    ) -> GetSessionResult:
        """Administrative: change how long a session's history is kept (legal_hold = never purged). With
        token authentication only the session's owner may."""
        authenticated = acting_agent(actor, field="actor")
        session = await c.sessions.set_retention(
            session_key, retention_policy, authenticated or actor, owner_only=current_caller() is not None
        )
        return GetSessionResult(session=SessionOut.of(session))

    for fn, hints in (
        (register_session, WRITE),
        (update_context, WRITE),
        (request_handoff, WRITE),
        (get_context, READ_ONLY),
        (get_session, READ_ONLY),
        (list_sessions, READ_ONLY),
        (get_handoff, READ_ONLY),
        (list_handoffs, READ_ONLY),
        (accept_handoff, WRITE),
        (decline_handoff, WRITE),
        (complete_handoff, WRITE),
        (get_lifecycle, READ_ONLY),
        (complete_session, WRITE),
        (set_retention_policy, WRITE),
    ):
        server.add_tool(fn, annotations=hints, structured_output=True)
