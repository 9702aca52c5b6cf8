"""Searching context: ranked full-text search over every session's entries, with snippets.

Who may search what: exactly who may read it with get_context, which today is every caller, for
every session (with token authentication, any valid token). `agent` is a filter on who wrote an
entry, not an identity check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from handoff.config import LimitSettings
from handoff.domain.models import ContextType
from handoff.domain.search import SearchHit, highlighter, parse_query, snippet
from handoff.domain.validation import validate_agent, validate_session_key
from handoff.services.context import parse_context_type
from handoff.services.paging import check_limit, decode_ranked, encode_ranked
from handoff.services.ports import NoRetry, Retrier, UnitOfWorkFactory


@dataclass(frozen=True, slots=True)
class SearchResult:
    session_key: str
    sequence_number: int
    context_type: ContextType
    agent: str
    snippet: str
    score: float


@dataclass(frozen=True, slots=True)
class SearchPage:
    results: list[SearchResult]
    next_cursor: str | None


class SearchService:
    def __init__(self, uow: UnitOfWorkFactory, limits: LimitSettings, retry: Retrier | None = None) -> None:
        self._uow = uow
        self._limits = limits
        self._retry = retry or NoRetry()

    async def search(
        self,
        query: str,
        *,
        session_key: str | None = None,
        context_types: Sequence[str] | None = None,
        agent: str | None = None,
        cursor: str | None = None,
        limit: int = 20,
    ) -> SearchPage:
        parsed = parse_query(query)
        limit = check_limit(limit, self._limits.max_page_size)
        key = None if session_key is None else validate_session_key(session_key, max_length=self._limits.max_key_length)
        kinds = sorted({parse_context_type(t, field="context_types") for t in context_types}) if context_types else None
        writer = None if agent is None else validate_agent(agent, field="agent", max_length=self._limits.max_key_length)
        # A cursor continues the search that made it, and no other.
        scope = repr((parsed.fingerprint(), key, kinds, writer))
        fingerprint = hashlib.sha256(scope.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        after: tuple[float, int] | None = None
        snapshot: int | None = None
        if cursor:
            score, entry_id, snapshot = decode_ranked(cursor, prefix="q", fingerprint=fingerprint)
            after = (score, entry_id)

        async def read() -> tuple[list[SearchHit], int]:
            async with self._uow(write=False) as uow:
                session_id = None
                if key is not None:
                    session_id = (await uow.sessions.get(key, with_participants=False)).id
                up_to = snapshot if snapshot is not None else await uow.search.last_entry_id()
                hits = await uow.search.search(
                    parsed,
                    session_id=session_id,
                    context_types=kinds,
                    agent=writer,
                    up_to_id=up_to,
                    after=after,
                    limit=limit + 1,
                )
            return hits, up_to

        hits, up_to = await self._retry.call(read)
        more = len(hits) > limit
        hits = hits[:limit]
        pattern = highlighter(parsed)
        results = [
            SearchResult(
                session_key=h.session_key,
                sequence_number=h.sequence_number,
                context_type=h.context_type,
                agent=h.agent,
                snippet=snippet(h.text, pattern),
                score=h.score,
            )
            for h in hits
        ]
        last = hits[-1] if more and hits else None
        next_cursor = None if last is None else encode_ranked("q", last.score, last.entry_id, up_to, fingerprint)
        return SearchPage(results, next_cursor)
