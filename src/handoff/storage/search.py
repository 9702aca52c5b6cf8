"""The full-text index over context entries: SQLite FTS5, PostgreSQL tsvector + GIN.

Both index what `handoff.domain.search.index_text` makes of an entry (its words, reduced and
separated by spaces), so both backends find the same entries for the same query; queries are
rendered from the parsed `SearchQuery`, never from the caller's text.

SQLite: the FTS5 table `context_search`, rowid = the entry's id, with two columns: `body`, the
reduced words, and `scope`, one token per filter value (`s<session id>`, `t<type>`, `a<hash of the
writer>`), so a filtered search intersects posting lists instead of ranking every match in the
database and dropping most of them. The trigger `context_search_delete` removes an entry's row
whenever the entry is deleted (purge, session deletion, repair), whoever deletes it.

PostgreSQL: the table `context_search` (entry_id → context_entries ON DELETE CASCADE, session_id,
context_type, document tsvector) with a GIN index on `document` and a btree on `session_id`. An
entry and its index row are written by one statement (a data-modifying CTE): no extra round trip.

Either way the index row is written in the append's own transaction, and archiving (which packs an
entry's content) leaves it alone: archived entries are found as before, their snippets cut from the
unpacked text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.engine import Connection

from handoff.domain.models import ContextType
from handoff.domain.search import MAX_RANKED, SearchHit, SearchQuery, Term, index_text
from handoff.storage.db import Db
from handoff.storage.packing import PLAIN, unpack_content, unpack_head
from handoff.storage.tables import context_entries

INDEX_TABLE = "context_search"
SQLITE_DELETE_TRIGGER = "context_search_delete"
# How much of an entry's own text a hit carries for its snippet (a page of 500 hits on 8 MiB entries
# must not read 4 GB): a match deeper inside a long entry gets a snippet of the entry's head.
HIT_HEAD_CHARS = 16 * 1024
HIT_TAIL_CHARS = 4 * 1024
_PACKED_WHOLE_BYTES = 64 * 1024  # packed entries up to this size are unpacked whole (head and tail)


def is_index_table(name: str) -> bool:
    """The index's own tables (FTS5 adds context_search_data, _idx, …), which tables.py does not declare."""
    return name == INDEX_TABLE or name.startswith(INDEX_TABLE + "_")


# -- the schema (created by migration 0008) ------------------------------------------------------

SQLITE_SCHEMA = (
    # unicode61 only ever meets letters, digits and spaces here; diacritics stay significant, as on
    # PostgreSQL's `simple` configuration. No prefix index: it made every append write a quarter
    # more, and word* (3+ letters) reads the terms it covers off the main index fast enough.
    f"CREATE VIRTUAL TABLE {INDEX_TABLE} USING fts5(body, scope, tokenize = 'unicode61 remove_diacritics 0')",
    # Appends never merge segments (automerge 0; only a level of 64 would force it): each append
    # writes its own small segment and the merge_search job merges them, off the append path.
    f"INSERT INTO {INDEX_TABLE} ({INDEX_TABLE}, rank) VALUES ('automerge', 0)",
    f"INSERT INTO {INDEX_TABLE} ({INDEX_TABLE}, rank) VALUES ('crisismerge', 64)",
    f"CREATE TRIGGER {SQLITE_DELETE_TRIGGER} AFTER DELETE ON context_entries BEGIN "
    f"DELETE FROM {INDEX_TABLE} WHERE rowid = old.id; END",
)
SQLITE_OPTIMIZE = f"INSERT INTO {INDEX_TABLE} ({INDEX_TABLE}) VALUES ('optimize')"
POSTGRES_TABLE = (
    f"CREATE TABLE {INDEX_TABLE} ("
    "entry_id BIGINT NOT NULL, session_id BIGINT NOT NULL, context_type VARCHAR(16) NOT NULL, "
    "document TSVECTOR NOT NULL, "
    f"CONSTRAINT pk_{INDEX_TABLE} PRIMARY KEY (entry_id), "
    f"CONSTRAINT fk_{INDEX_TABLE}_entry_id FOREIGN KEY (entry_id) REFERENCES context_entries (id) ON DELETE CASCADE)"
)
POSTGRES_INDEXES = (
    f"CREATE INDEX ix_{INDEX_TABLE}_document ON {INDEX_TABLE} USING gin (document)",
    f"CREATE INDEX ix_{INDEX_TABLE}_session ON {INDEX_TABLE} (session_id)",
)

_pg = sa.Table(
    INDEX_TABLE,
    sa.MetaData(),  # not the application's metadata: PostgreSQL only, created by its migration
    sa.Column("entry_id", sa.BigInteger, primary_key=True),
    sa.Column("session_id", sa.BigInteger, nullable=False),
    sa.Column("context_type", sa.String(16), nullable=False),
    sa.Column("document", TSVECTOR, nullable=False),
)


def _to_tsvector(text: Any) -> Any:
    return sa.func.to_tsvector(sa.literal_column("'simple'::regconfig"), text)


def scope_tokens(session_id: int, context_type: str, agent: str) -> str:
    return f"s{session_id} {_type_token(context_type)} {_agent_token(agent)}"


def _type_token(context_type: str) -> str:
    return "t" + context_type.replace("_", "")


def _agent_token(agent: str) -> str:
    return "a" + hashlib.sha256(agent.encode("utf-8", "surrogatepass")).hexdigest()[:16]


# -- writing: entries and their index rows, in the caller's transaction ---------------------------

_INSERT_ENTRY = context_entries.insert()
_ENTRY_VALUES = [c for c in context_entries.c if c.name not in ("id", "content_codec", "content_packed")]
_added = (
    context_entries.insert()
    .values({c.name: sa.bindparam(c.name, type_=c.type) for c in _ENTRY_VALUES})
    .returning(context_entries.c.id, context_entries.c.session_id, context_entries.c.context_type)
    .cte("added")
)
_PG_INSERT_INDEXED = _pg.insert().from_select(
    ["entry_id", "session_id", "context_type", "document"],
    sa.select(
        _added.c.id, _added.c.session_id, _added.c.context_type, _to_tsvector(sa.bindparam("b_words", type_=sa.Text))
    ),
)
_SQLITE_INDEX_ONE = sa.text(f"INSERT INTO {INDEX_TABLE} (rowid, body, scope) VALUES (:b_id, :b_words, :b_scope)")
_POSTGRES_INDEX_ONE = sa.text(
    f"INSERT INTO {INDEX_TABLE} (entry_id, session_id, context_type, document) "
    "VALUES (:b_id, :session_id, :context_type, to_tsvector('simple', :b_words))"
)
_SQLITE_INDEX_BY_SEQUENCE = sa.text(
    f"INSERT INTO {INDEX_TABLE} (rowid, body, scope) SELECT id, :b_words, :b_scope FROM context_entries "
    "WHERE session_id = :session_id AND sequence_number = :sequence_number"
)


async def insert_entries(db: Db, rows: Sequence[dict[str, Any]]) -> None:
    """Insert context_entries rows (as repositories build them) and index each one."""
    if not rows:
        return
    if db.dialect == "postgresql":
        indexed = [{**row, "b_words": index_text(row["content"])} for row in rows]
        await db.execute(_PG_INSERT_INDEXED, indexed[0] if len(indexed) == 1 else indexed)
        return
    scopes = [
        {
            "b_words": index_text(row["content"]),
            "b_scope": scope_tokens(row["session_id"], row["context_type"], row["agent"]),
        }
        for row in rows
    ]
    if len(rows) == 1:
        result = await db.execute(_INSERT_ENTRY, rows[0])
        await db.execute(_SQLITE_INDEX_ONE, {**scopes[0], "b_id": result.lastrowid})
        return
    await db.execute(_INSERT_ENTRY, list(rows))
    await db.execute(
        _SQLITE_INDEX_BY_SEQUENCE,
        [
            {**scope, "session_id": row["session_id"], "sequence_number": row["sequence_number"]}
            for row, scope in zip(rows, scopes, strict=True)
        ],
    )


def backfill(conn: Connection, *, after_id: int = 0, batch: int = 2000) -> int:
    """Index every entry with an id above `after_id`, archived ones unpacked; return how many.

    For the migration that creates the index (so nothing is indexed yet): it runs on that migration's
    synchronous connection and transaction, in id order, a batch at a time along the primary key.
    """
    c = context_entries.c
    postgres = conn.dialect.name == "postgresql"
    columns = (c.id, c.session_id, c.context_type, c.agent, c.content, c.content_codec, c.content_packed)
    last, done = after_id, 0
    while True:
        query = sa.select(*columns).where(c.id > last).order_by(c.id).limit(batch)
        rows = conn.execute(query).mappings().all()
        if not rows:
            return done
        params = [
            {
                "b_id": r["id"],
                "session_id": r["session_id"],
                "context_type": r["context_type"],
                "b_words": index_text(unpack_content(r["content"], r["content_codec"], r["content_packed"])),
                "b_scope": scope_tokens(r["session_id"], r["context_type"], r["agent"]),
            }
            for r in rows
        ]
        conn.execute(_POSTGRES_INDEX_ONE if postgres else _SQLITE_INDEX_ONE, params)
        done += len(rows)
        last = int(rows[-1]["id"])


# -- reading --------------------------------------------------------------------------------------


def fts5_match(
    query: SearchQuery, *, session_id: int | None, context_types: Sequence[ContextType] | None, agent: str | None
) -> str:
    """The MATCH expression: every word double-quoted, filters as scope tokens."""

    def term(t: Term) -> str:
        return " + ".join('"' + w.text.replace('"', '""') + '"' + (" *" if w.prefix else "") for w in t.words)

    expr = " AND ".join("(" + " OR ".join(term(t) for t in group) + ")" for group in query.groups)
    proximity = query.proximity_phrase()
    if proximity is not None:
        expr = f"({expr}) OR ({term(proximity)})"
    for excluded in query.excluded:
        expr = f"({expr}) NOT ({term(excluded)})"
    parts = []
    if session_id is not None:
        parts.append(f'{{scope}} : "s{int(session_id)}"')
    if context_types:
        parts.append("{scope} : (" + " OR ".join(f'"{_type_token(t.value)}"' for t in context_types) + ")")
    if agent is not None:
        parts.append(f'{{scope}} : "{_agent_token(agent)}"')
    parts.append(f"{{body}} : ({expr})")
    return " AND ".join(parts)


def tsquery_text(query: SearchQuery) -> tuple[str, str | None]:
    """(the query, the proximity phrase or None) as to_tsquery('simple', …) text."""

    def term(t: Term) -> str:
        return "(" + " <-> ".join(f"'{w.text}'" + (":*" if w.prefix else "") for w in t.words) + ")"

    text = " & ".join("(" + " | ".join(term(t) for t in group) + ")" for group in query.groups)
    for excluded in query.excluded:
        text += f" & !{term(excluded)}"
    proximity = query.proximity_phrase()
    return text, None if proximity is None else term(proximity)


def _details(hits: str, dialect: str) -> str:
    """Join the ranked page `hits` (entry_id, score) to what a result shows, content cut to bounds."""
    if dialect == "postgresql":
        head = "left(e.content, :b_head)"
        tail = "CASE WHEN length(e.content) > :b_head + :b_tail THEN right(e.content, :b_tail) ELSE '' END"
    else:
        head = "substr(e.content, 1, :b_head)"
        tail = (
            "CASE WHEN length(e.content) > :b_head + :b_tail "
            "THEN substr(e.content, length(e.content) - :b_tail + 1) ELSE '' END"
        )
    return (
        "SELECT h.entry_id, h.score, s.session_key, e.sequence_number, e.context_type, e.agent, e.content_codec, "
        f"CASE WHEN e.content_codec = '{PLAIN}' THEN NULL ELSE e.content_packed END AS packed, "
        f"CASE WHEN e.content_codec = '{PLAIN}' THEN {head} ELSE '' END AS head, "
        f"CASE WHEN e.content_codec = '{PLAIN}' THEN {tail} ELSE '' END AS tail "
        f"FROM ({hits}) AS h JOIN context_entries e ON e.id = h.entry_id JOIN sessions s ON s.id = e.session_id "
        "ORDER BY h.score DESC, h.entry_id DESC"
    )


_TOTAL_CHANGES = sa.text("SELECT total_changes()")
_MERGE = sa.text(f"INSERT INTO {INDEX_TABLE} ({INDEX_TABLE}, rank) VALUES ('merge', :b_pages)")
_CUSTOM_PLANS = sa.text("SET LOCAL plan_cache_mode = force_custom_plan")

# Ranked best first; equal scores newest first. A page after `after` = (score, entry_id) continues
# exactly where the previous one stopped.
_KEYSET = "(:b_first OR score < :b_score OR (score = :b_score AND entry_id < :b_after))"


class SqlSearchRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def merge(self, *, pages: int) -> bool:
        if self._db.dialect != "sqlite":
            return False  # GIN's pending list is merged by (auto)vacuum
        before = (await self._db.execute(_TOTAL_CHANGES)).scalar_one()
        await self._db.execute(_MERGE, {"b_pages": pages})
        # FTS5's documented test: fewer than two changed rows means the merge found nothing to do.
        return bool((await self._db.execute(_TOTAL_CHANGES)).scalar_one() - before >= 2)

    async def last_entry_id(self) -> int:
        result = await self._db.execute(sa.select(sa.func.coalesce(sa.func.max(context_entries.c.id), 0)))
        return int(result.scalar_one())

    async def search(
        self,
        query: SearchQuery,
        *,
        session_id: int | None,
        context_types: Sequence[ContextType] | None,
        agent: str | None,
        up_to_id: int,
        after: tuple[float, int] | None,
        limit: int,
    ) -> list[SearchHit]:
        params: dict[str, Any] = {
            "b_upto": up_to_id,
            "b_first": after is None,
            "b_score": after[0] if after else 0.0,
            "b_after": after[1] if after else 0,
            "b_limit": limit,
            "b_head": HIT_HEAD_CHARS,
            "b_tail": HIT_TAIL_CHARS,
            "b_ranked": MAX_RANKED,
        }
        if self._db.dialect == "postgresql":
            # Plan for this query's words: a plan cached for "some words" (asyncpg prepares the
            # statement, and PostgreSQL switches to a generic plan after five runs) cannot tell a
            # word in 300 entries from one in 300,000 and picked scans ten times slower.
            await self._db.execute(_CUSTOM_PLANS)
            hits = self._postgres_hits(query, session_id, context_types, agent, params)
        else:
            params["b_match"] = fts5_match(query, session_id=session_id, context_types=context_types, agent=agent)
            # bm25 is lower for better matches; the body column alone counts (scope weighs 0). Its
            # scores move a little with every entry added anywhere (document counts, average
            # length), so a page continues from where its anchor (the previous page's last hit)
            # ranks now, read again, rather than from the score the cursor remembers: the order
            # among entries hardly ever changes, their absolute scores do at every append.
            # Only the newest MAX_RANKED matches are ranked: the cut is the rowid of the last of
            # them, read off the index without scoring anything (FTS5 walks its doclists backwards).
            bm25 = f"-bm25({INDEX_TABLE}, 1.0, 0.0)"
            cut = (
                f"SELECT coalesce((SELECT rowid FROM {INDEX_TABLE} WHERE {INDEX_TABLE} MATCH :b_match "
                "AND rowid <= :b_upto ORDER BY rowid DESC LIMIT 1 OFFSET :b_ranked - 1), 0)"
            )
            ranked = (
                f"SELECT rowid AS entry_id, {bm25} AS score FROM {INDEX_TABLE} "
                f"WHERE {INDEX_TABLE} MATCH :b_match AND rowid <= :b_upto AND rowid >= ({cut})"
            )
            anchor = f"SELECT {bm25} FROM {INDEX_TABLE} WHERE {INDEX_TABLE} MATCH :b_match AND rowid = :b_after"
            hits = (
                f"WITH anchor (a) AS (SELECT coalesce(({anchor}), :b_score)) "
                f"SELECT entry_id, score FROM ({ranked}), anchor "
                "WHERE (:b_first OR score < a OR (score = a AND entry_id < :b_after)) "
                "ORDER BY score DESC, entry_id DESC LIMIT :b_limit"
            )
        rows = await self._db.fetch_mappings(sa.text(_details(hits, self._db.dialect)), params)
        return [_hit(r) for r in rows]

    @staticmethod
    def _postgres_hits(
        query: SearchQuery,
        session_id: int | None,
        context_types: Sequence[ContextType] | None,
        agent: str | None,
        params: dict[str, Any],
    ) -> str:
        text, proximity = tsquery_text(query)
        params["b_query"] = text
        tsquery = "to_tsquery('simple', :b_query)"
        # Cover density, normalised by document length: words close together rank higher.
        score = f"ts_rank_cd(cs.document, {tsquery}, 1)"
        if proximity is not None:
            params["b_phrase"] = proximity
            score += " + ts_rank_cd(cs.document, to_tsquery('simple', :b_phrase), 1)"
        where = [f"cs.document @@ {tsquery}", "cs.entry_id <= :b_upto"]
        if session_id is not None:
            params["b_session"] = session_id
            where.append("cs.session_id = :b_session")
        if context_types:
            names = []
            for i, kind in enumerate(context_types):
                params[f"b_type{i}"] = kind.value
                names.append(f":b_type{i}")
            where.append(f"cs.context_type IN ({', '.join(names)})")
        if agent is not None:
            params["b_agent"] = agent
            where.append("EXISTS (SELECT 1 FROM context_entries w WHERE w.id = cs.entry_id AND w.agent = :b_agent)")
        # Only the newest MAX_RANKED matches are ranked: for a common word the planner then walks the
        # primary key backwards and stops at the cap instead of fetching every match. Not for a
        # phrase: words that are common together can be rare side by side, and that walk would read
        # the whole table looking for them; `+ 0` keeps it to the index (fetch the matches, sort).
        phrase = any(t.is_phrase for t in query.positive_terms())
        order = "cs.entry_id + 0" if phrase else "cs.entry_id"
        newest = (
            f"SELECT cs.entry_id, cs.document FROM {INDEX_TABLE} cs WHERE {' AND '.join(where)} "
            f"ORDER BY {order} DESC LIMIT :b_ranked"
        )
        ranked = f"SELECT cs.entry_id, {score} AS score FROM ({newest}) AS cs"
        return (
            f"SELECT entry_id, score FROM ({ranked}) AS ranked WHERE {_KEYSET} "
            "ORDER BY score DESC, entry_id DESC LIMIT :b_limit"
        )


def _hit(row: Any) -> SearchHit:
    if row["content_codec"] == PLAIN:
        text = row["head"] + ("\n" + row["tail"] if row["tail"] else "")
    elif len(row["packed"]) <= _PACKED_WHOLE_BYTES:
        whole = unpack_content("", row["content_codec"], row["packed"])
        cut = len(whole) > HIT_HEAD_CHARS + HIT_TAIL_CHARS
        text = whole[:HIT_HEAD_CHARS] + "\n" + whole[-HIT_TAIL_CHARS:] if cut else whole
    else:
        text = unpack_head(row["content_codec"], row["packed"], HIT_HEAD_CHARS)
    return SearchHit(
        entry_id=int(row["entry_id"]),
        session_key=row["session_key"],
        sequence_number=int(row["sequence_number"]),
        context_type=ContextType(row["context_type"]),
        agent=row["agent"],
        score=float(row["score"]),
        text=text,
    )
