"""What the receiving agent is told to do next: exact tool calls and URIs, no guessing."""

from __future__ import annotations

from handoff.domain.models import HandoffType


def handoff_resources(session_key: str, handoff_id: str) -> list[str]:
    return [
        f"handoff://handoffs/{handoff_id}",
        f"handoff://sessions/{session_key}",
        f"handoff://sessions/{session_key}/context",
        f"handoff://sessions/{session_key}/lifecycle",
    ]


def render_instructions(*, session_key: str, handoff_id: str, target_agent: str, handoff_type: HandoffType) -> str:
    write_rule = {
        HandoffType.FULL_HANDOFF: (
            "You now own this session; the previous owner can no longer write. Record your progress with "
            f'update_context(session_key="{session_key}", agent="{target_agent}", context_type="message", '
            'content="...").'
        ),
        HandoffType.COLLABORATION: (
            "You may write alongside the owner: "
            f'update_context(session_key="{session_key}", agent="{target_agent}", context_type="message", '
            'content="...").'
        ),
        HandoffType.CONTEXT_TRANSFER: (
            "This is a read copy: the owner keeps the session and you cannot write to it. Start your own "
            "session with register_session if you need to record work."
        ),
    }[handoff_type]
    return "\n".join(
        [
            f"You are receiving a {handoff_type.value} of session `{session_key}` (handoff `{handoff_id}`).",
            f'1. Take it up: accept_handoff(handoff_id="{handoff_id}", agent="{target_agent}"); it expires '
            "if nobody accepts it in time. If you cannot take it, "
            f'decline_handoff(handoff_id="{handoff_id}", agent="{target_agent}", reason="...") says why '
            "and gives back what it granted.",
            "2. Read the brief: it is a bounded summary, not the whole history.",
            "3. Fetch the full history in order, one page at a time: "
            f'get_context(session_key="{session_key}", limit=100), then repeat with cursor=<next_cursor> '
            'until next_cursor is null. Add context_types=["file"] (or message, tool_call, system) to '
            "read one kind only.",
            f"   Resource clients: read handoff://sessions/{session_key}/context and follow next_uri.",
            f"4. This handoff stays readable at handoff://handoffs/{handoff_id} "
            f'(or get_handoff(handoff_id="{handoff_id}")).',
            f"5. {write_rule}",
            f'6. When the handed-off work is done: complete_handoff(handoff_id="{handoff_id}", '
            f'agent="{target_agent}", summary="...").',
        ]
    )
