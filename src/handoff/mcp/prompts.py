"""Prompts: the opening message for an agent that receives a handoff."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from pydantic import Field

from handoff.domain.lifecycle import check_handoff_target
from handoff.domain.models import HandoffStatus
from handoff.mcp.errors import rpc_errors
from handoff.mcp.identity import acting_agent

if TYPE_CHECKING:  # only the type: importing the container would load the storage layer
    from handoff.container import Container

PREVIEW_TOKENS = 1500
PREPARE_TEXT = """You are about to hand session `{session_key}` to another agent. Below is what the server \
extracted from the history so far. The next agent will read it, plus a note from you.

{preview}

---
Write the note now: only what the extract above misses or gets wrong. Be concrete: name files, \
functions, tests and commands. Then call request_handoff(session_key="{session_key}", \
target_agent=<who takes over>, note={{...}}) with these fields (all optional):
- goal: the task as you understood it, with its specifics and acceptance criteria
- state: where things stand: what works, what is half-done, what is broken right now
- decisions: choices you made and why
- rejected: approaches you tried or ruled out, and why (so they are not retried)
- constraints: rules from the user or the codebase that must hold
- open_tasks: work not done yet
- next_steps: what the next agent should do first, in order
- text: anything else
"""


def register_prompts(server: MCPServer, c: Container) -> None:
    @server.prompt(name="resume_handoff", title="Resume a handoff")
    @rpc_errors
    async def resume_handoff(
        handoff_id: Annotated[str, Field(description="The handoff_id from request_handoff or your inbox.")],
        agent: Annotated[
            str | None,
            Field(description="You, the target: given, a pending handoff is accepted for you as it is resumed."),
        ] = None,
    ) -> list[UserMessage]:
        """The brief and instructions of a handoff, as the receiving agent's opening message; with agent
        (the target), a pending handoff is accepted too."""
        view = await c.handoffs.get(handoff_id)
        accepted_now = False
        if agent is not None:
            agent = acting_agent(agent) or agent  # with a token: only its own agent
            check_handoff_target(view.handoff, agent.strip(), "resume")
            if view.handoff.status is HandoffStatus.PENDING:
                view = await c.handoffs.accept(handoff_id, agent)
                accepted_now = True
        h = view.handoff
        if accepted_now:
            standing = f"You have accepted this handoff ({h.handoff_id})."
        elif h.status is HandoffStatus.PENDING:
            standing = (
                f"This handoff ({h.handoff_id}) is pending: accept it with "
                f'accept_handoff(handoff_id="{h.handoff_id}", agent="{h.target_agent}") before you start.'
            )
        else:
            standing = f"This handoff ({h.handoff_id}) is {h.status.value}."
        text = (
            f"You are {h.target_agent}. {h.source_agent} handed session `{h.session_key}` to you "
            f"({h.handoff_type.value}). {standing}\n\n{h.brief}\n\n## How to continue\n{h.instructions}"
        )
        return [UserMessage(content=text)]

    @server.prompt(name="prepare_handoff", title="Prepare a handoff note")
    @rpc_errors
    async def prepare_handoff(
        session_key: Annotated[str, Field(description="The session you are about to hand off.")],
    ) -> list[UserMessage]:
        """Shows what the server already knows of a session and asks you to write the handoff note."""
        preview = await c.handoffs.preview(session_key, PREVIEW_TOKENS)
        return [UserMessage(content=PREPARE_TEXT.format(session_key=session_key, preview=preview))]
