"""Argument completion (`completion/complete`) for prompts and resource templates.

Arguments are completed by name, wherever they appear: `session_key`, `handoff_id` and agent names
(`agent`, `target_agent`, `source_agent`). Values start with what the user typed (case included), at
most 100 per answer with `hasMore` when there are more. For `handoff_id`, an `agent` already given
(the resume_handoff prompt) narrows the values to the handoffs waiting for that agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer

from handoff.errors import HandoffError
from handoff.mcp.errors import rpc_error
from handoff.mcp.readiness import ContainerGate

if TYPE_CHECKING:  # only the type: importing the container would load the storage layer
    from handoff.container import Container
    from handoff.services.completion import Suggestions

AGENT_ARGUMENTS = frozenset({"agent", "target_agent", "source_agent"})


def register_completions(server: MCPServer, container: Container | ContainerGate) -> None:
    """Serve `completion/complete` (which also advertises the `completions` capability)."""

    async def complete(
        ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        name = params.argument.name
        if name not in AGENT_ARGUMENTS and name not in ("session_key", "handoff_id"):
            return types.CompleteResult(completion=types.Completion(values=[]))  # cursors, limits: nothing to offer
        given = (params.context.arguments if params.context else None) or {}
        try:  # the request pipeline applies the deadline and waits for storage to be up
            found = await _suggest(container, name, params.argument.value, given)
        except HandoffError as error:
            raise rpc_error(error) from None
        return types.CompleteResult(completion=types.Completion(values=found.values, has_more=found.has_more))

    # The SDK's @completion() decorator does the same, untyped.
    server._lowlevel_server.add_request_handler("completion/complete", types.CompleteRequestParams, complete)


async def _suggest(container: Container | ContainerGate, name: str, value: str, given: dict[str, str]) -> Suggestions:
    completion = container.completion
    if name == "session_key":
        return await completion.session_keys(value)
    if name == "handoff_id":
        return await completion.handoff_ids(value, pending_for=given.get("agent"))
    return await completion.agents(value)
