"""The search_context tool: validate, call the search service, shape the result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from handoff.domain.search import MAX_QUERY_CHARS, MIN_PREFIX_CHARS
from handoff.mcp.errors import tool_errors
from handoff.mcp.schemas import ContextTypeName

if TYPE_CHECKING:  # only the types: importing the container would load the storage layer
    from handoff.container import Container
    from handoff.services.search import SearchPage

QUERY_SYNTAX = (
    "Words, all of which must appear (any order, case-insensitive): refund webhook. "
    '"exact phrase" for words side by side. '
    f"refun* for words starting with refun (at least {MIN_PREFIX_CHARS} letters before *). "
    "webhook OR callback for either. -stripe to leave out entries holding a word. "
    "Punctuation separates words (src/app.py finds those three words in a row); "
    f"Chinese, Japanese and Korean text matches character sequences. Up to {MAX_QUERY_CHARS} characters."
)


class SearchResultOut(BaseModel):
    session_key: str
    sequence_number: int = Field(description="Read the whole entry with get_context (cursor just before it).")
    context_type: ContextTypeName
    snippet: str = Field(description="Text around the first match, matched words marked «like this».")
    score: float = Field(description="Higher is a better match; comparable only within one search.")


class SearchContextResult(BaseModel):
    results: list[SearchResultOut] = Field(description="Best match first.")
    next_cursor: str | None = Field(description="Pass back as cursor, with the same query and filters, for more.")

    @classmethod
    def of(cls, page: SearchPage) -> SearchContextResult:
        return cls(
            results=[
                SearchResultOut(
                    session_key=r.session_key,
                    sequence_number=r.sequence_number,
                    context_type=r.context_type.value,
                    snippet=r.snippet,
                    score=float(f"{r.score:.6g}"),
                )
                for r in page.results
            ],
            next_cursor=page.next_cursor,
        )


def register_search_tool(server: MCPServer, c: Container) -> None:
    @tool_errors
    async def search_context(
        query: Annotated[str, Field(description=QUERY_SYNTAX)],
        session_key: Annotated[
            str | None, Field(description="Only this session's entries (all sessions when omitted).")
        ] = None,
        context_types: Annotated[
            list[ContextTypeName] | None, Field(description="Only these entry types (all when omitted).")
        ] = None,
        agent: Annotated[str | None, Field(description="Only entries this agent wrote.")] = None,
        cursor: Annotated[str | None, Field(description="next_cursor from the previous page of this search.")] = None,
        limit: Annotated[int, Field(description="Results per page (1..500).")] = 20,
    ) -> SearchContextResult:
        """Find where something was discussed or done, in one session's history or across all of them,
        instead of paging through get_context: e.g. "where did we decide on the refund webhook?", the
        command that printed an error, a file path. Returns the best-matching entries first, each with
        its session_key, sequence_number and a snippet; archived sessions are searched too."""
        page = await c.search.search(
            query, session_key=session_key, context_types=context_types, agent=agent, cursor=cursor, limit=limit
        )
        return SearchContextResult.of(page)

    server.add_tool(
        search_context,
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
        structured_output=True,
    )
