"""Prompts: the opening message for an agent that receives a handoff."""

from __future__ import annotations

from typing import Annotated

import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.shared.exceptions import MCPError
from pydantic import Field

from handoff.container import Container
from handoff.errors import HandoffError


def register_prompts(server: MCPServer, c: Container) -> None:
    @server.prompt(name="resume_handoff", title="Resume a handoff")
    async def resume_handoff(
        handoff_id: Annotated[str, Field(description="The handoff_id from request_handoff.")],
    ) -> list[UserMessage]:
        """The brief and instructions of a handoff, as the receiving agent's opening message."""
        try:
            view = await c.handoffs.get(handoff_id)
        except HandoffError as error:
            raise MCPError(code=types.INVALID_PARAMS, message=error.message, data={"code": error.code}) from None
        h = view.handoff
        text = (
            f"You are {h.target_agent}. {h.source_agent} handed session `{h.session_key}` to you "
            f"({h.handoff_type.value}).\n\n{h.brief}\n\n## How to continue\n{h.instructions}"
        )
        return [UserMessage(content=text)]
