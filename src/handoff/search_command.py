"""`handoff search QUERY`: the search_context tool on the command line (same syntax, same results)."""

from __future__ import annotations

import argparse
import json

import anyio

from handoff.config import Settings
from handoff.domain.models import ContextType


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    search = commands.add_parser(
        "search",
        help="Search the context of every session (or one) for words, phrases or prefixes.",
        description='Ranked full-text search over context entries. QUERY: words (all must appear), "exact '
        'phrase", prefix* (3+ letters), a OR b, -excluded.',
    )
    search.add_argument("query", metavar="QUERY", help='e.g. refund webhook, "refund webhook", refun*')
    search.add_argument("--session", metavar="KEY", help="Only this session's entries.")
    search.add_argument(
        "--type", action="append", choices=[t.value for t in ContextType], help="Only entries of this type (repeat)."
    )
    search.add_argument("--agent", help="Only entries this agent wrote.")
    search.add_argument("--limit", type=int, default=20, help="Results to show (default 20).")
    search.add_argument("--cursor", help="next_cursor from a previous --json run, for the next page.")
    search.add_argument("--json", action="store_true", help='Print {"results", "next_cursor"} as JSON.')
    search.set_defaults(run=_search)


def _search(settings: Settings, args: argparse.Namespace) -> None:
    anyio.run(_run_search, settings, args)


async def _run_search(settings: Settings, args: argparse.Namespace) -> None:
    from handoff.container import Container
    from handoff.mcp.search_tool import SearchContextResult
    from handoff.tables import Table

    async with Container.build(settings) as container:
        page = await container.search.search(
            args.query,
            session_key=args.session,
            context_types=args.type,
            agent=args.agent,
            cursor=args.cursor,
            limit=args.limit,
        )
    if args.json:
        body = SearchContextResult.of(page).model_dump(mode="json")
        print(json.dumps(body, ensure_ascii=False, indent=2))
        return
    more = " (more: --json shows next_cursor)" if page.next_cursor else ""
    table = Table(title=f"search {args.query!r}: {len(page.results)} results{more}")
    for column in ("session", "#", "type", "agent", "score", "snippet"):
        table.add_column(column)
    for r in page.results:
        table.add_row(r.session_key, str(r.sequence_number), r.context_type.value, r.agent, f"{r.score:.4g}", r.snippet)
    print(table.render())
