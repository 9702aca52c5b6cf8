"""Search over context on the real database, both backends: ranking, syntax, filters, paging, and the
index staying in step with appends, archiving, purging and the migration that builds it."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from handoff.config import Settings
from handoff.container import Container
from handoff.errors import InvalidInput, NotFound
from handoff.services.context import NewContext
from handoff.storage import migrate
from handoff.storage.revision import SCHEMA_HEAD
from handoff.storage.tables import context_entries, session_participants, sessions
from tests.unit.fakes import FakeClock

pytestmark = pytest.mark.anyio

DAY = 24 * 3600


async def _keys(c: Container, query: str, **filters: object) -> list[tuple[str, int]]:
    page = await c.search.search(query, limit=100, **filters)  # type: ignore[arg-type]
    return [(r.session_key, r.sequence_number) for r in page.results]


async def _index_rows(c: Container) -> int:
    async with c.engine.connect() as conn:
        return int((await conn.execute(sa.text("SELECT count(*) FROM context_search"))).scalar_one())


async def _fill(c: Container, key: str, texts: list[str], agent: str = "alice") -> None:
    await c.sessions.register(key, agent, {}, None)
    for text in texts:
        await c.context.append(key, "message", text, {}, None, None)


async def test_the_entry_holding_the_exact_phrase_ranks_first(container: Container) -> None:
    await _fill(
        container,
        "rank",
        [
            "the refund went out; much later, unrelated, someone touched the webhook config",
            "webhook first, refund second: the words the other way round",
            "refund refund refund and a webhook, the words repeated but never together",
            "we decided the refund webhook retries three times",
            "nothing to see here",
        ],
    )
    words = await _keys(container, "refund webhook")
    assert words[0] == ("rank", 4)
    assert sorted(words) == [("rank", 1), ("rank", 2), ("rank", 3), ("rank", 4)]  # all hold both words
    assert await _keys(container, '"refund webhook"') == [("rank", 4)]
    page = await container.search.search('"refund webhook"')
    assert page.results[0].snippet == "we decided the «refund webhook» retries three times"
    assert page.results[0].score > 0


async def test_prefix_or_and_exclusion(container: Container) -> None:
    await _fill(
        container,
        "syntax",
        ["refunds are slow", "refunding now", "a refund", "the referee", "callback fired", "refund via stripe"],
    )
    assert sorted(await _keys(container, "refun*")) == [("syntax", n) for n in (1, 2, 3, 6)]
    assert sorted(await _keys(container, '"refund via str*"')) == [("syntax", 6)]
    assert sorted(await _keys(container, "refund OR callback")) == [("syntax", 3), ("syntax", 5), ("syntax", 6)]
    assert await _keys(container, "refund -stripe") == [("syntax", 3)]
    assert await _keys(container, "REFUND Via") == [("syntax", 6)]  # case-insensitive, any order
    assert await _keys(container, "refun") == []  # whole words unless asked for a prefix


async def test_punctuation_splits_words_the_same_way_in_entries_and_queries(container: Container) -> None:
    await _fill(container, "paths", ["edited src/billing/refund_webhook.py:42", "src billing notes"])
    assert await _keys(container, "src/billing/refund_webhook.py") == [("paths", 1)]
    assert await _keys(container, "refund_webhook") == [("paths", 1)]
    assert await _keys(container, "webhook.py") == [("paths", 1)]


async def test_filters_by_session_type_and_writer(container: Container) -> None:
    c = container
    await c.sessions.register("one", "alice", {}, None)
    await c.sessions.register("two", "bob", {}, None)
    await c.context.append("one", "message", "deploy the parser", {}, None, None)
    await c.context.append("one", "tool_call", "$ deploy --dry-run", {}, None, None)
    await c.context.append("two", "file", "deploy.yaml changed", {}, None, None)
    await c.handoffs.request("one", "carol", "collaboration", {}, None)
    await c.context.append("one", "message", "deploy again, carol here", {}, "carol", None)

    assert sorted(await _keys(c, "deploy")) == [("one", 1), ("one", 2), ("one", 3), ("two", 1)]
    assert sorted(await _keys(c, "deploy", session_key="one")) == [("one", 1), ("one", 2), ("one", 3)]
    assert await _keys(c, "deploy", session_key="two") == [("two", 1)]
    assert sorted(await _keys(c, "deploy", context_types=["tool_call", "file"])) == [("one", 2), ("two", 1)]
    assert await _keys(c, "deploy", agent="carol") == [("one", 3)]
    assert await _keys(c, "deploy", agent="carol", session_key="two") == []
    with pytest.raises(NotFound):
        await c.search.search("deploy", session_key="nope")


async def test_pages_follow_each_other_without_repeats_or_gaps(container: Container) -> None:
    c = container
    await c.sessions.register("paged", "alice", {}, None)
    # Scores tie in groups (same text) and differ across them: the keyset must cut through ties.
    texts = [f"alpha {'beta ' * (i % 4)}gamma {i}" for i in range(23)]
    await c.context.append_batch("paged", [NewContext("message", t, {}, f"k{i}") for i, t in enumerate(texts)])
    whole = await _keys(c, "alpha")
    assert len(whole) == 23

    seen: list[tuple[str, int]] = []
    cursor = None
    for page_number in range(10):
        page = await c.search.search("alpha", limit=5, cursor=cursor)
        seen += [(r.session_key, r.sequence_number) for r in page.results]
        if page_number == 1:  # entries added mid-way are not part of this search's pages
            await c.context.append("paged", "message", "alpha alpha alpha", {}, None, None)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == whole
    assert len(await _keys(c, "alpha")) == 24  # a new search sees it


async def test_cursors_are_checked(container: Container) -> None:
    c = container
    await _fill(c, "cur", [f"word {i}" for i in range(5)])
    page = await c.search.search("word", limit=2)
    assert page.next_cursor is not None
    with pytest.raises(InvalidInput, match="different search") as other:
        await c.search.search("other", limit=2, cursor=page.next_cursor)
    assert other.value.details == {"field": "cursor"}
    with pytest.raises(InvalidInput, match="different search"):
        await c.search.search("word", limit=2, cursor=page.next_cursor, context_types=["file"])
    for forged in ("garbage", "cTpuYW46MTox", "", "cTox" * 40, page.next_cursor[:-3] + "AAA"):
        with pytest.raises(InvalidInput) as bad:
            await c.search.search("word", cursor=forged or "x")
        assert bad.value.details["field"] == "cursor"
    for limit in (0, -1, 501):
        with pytest.raises(InvalidInput) as out_of_range:
            await c.search.search("word", limit=limit)
        assert out_of_range.value.details["field"] == "limit"


HOSTILE = [
    '"',
    '""',
    "*",
    "**",
    "NEAR(",
    "NEAR(a b)",
    "a OR",
    "OR a",
    "a OR OR b",
    "-",
    "--a",
    "-a",
    ":",
    "body:secret",
    "scope:s1",
    "'",
    "a' OR '1'='1",
    "'; DROP TABLE context_entries; --",
    "a AND",
    "AND",
    "NOT a",
    "a & b | !c",
    "a:* <-> b",
    "(a",
    "a)",
    "{body}: a",
    "^a",
    "a\x00b",
    "\ud800",
    "a\udfffb",
    "\\",
    "re*",
    "a" * 600,
    " ".join(["w"] * 40),
    "%",
    "_",
    "🙂",
    "\u200b",
]


@pytest.mark.parametrize("query", HOSTILE)
async def test_hostile_queries_give_results_or_invalid_input_never_a_database_error(
    container: Container, query: str
) -> None:
    await _fill(container, "hostile", ["a b c secret body scope near and not", "s1 refund"])
    try:
        page = await container.search.search(query)
    except InvalidInput as error:
        assert error.details["field"] == "query"
        assert "SQL" not in error.message and "fts5" not in error.message.lower()
    else:
        assert isinstance(page.results, list)
    # The database is untouched and still answers.
    assert await _keys(container, "refund") == [("hostile", 2)]


async def test_unicode_cjk_and_odd_text(container: Container) -> None:
    c = container
    await _fill(
        c,
        "intl",
        [
            "退款处理失败，需要重试",  # Chinese, no spaces
            "返金のウェブフックを追加しました",  # Japanese
            "환불 웹훅을 추가했습니다",  # Korean
            "Ｆｕｌｌｗｉｄｔｈ ＲＥＦＵＮＤ and café crème",  # compatibility forms
            "emoji 🙂 between words, zero\u200bwidth, tabs\tand\nnewlines",
            "Привет мир, ελληνικά",
        ],
    )
    assert await _keys(c, "退款") == [("intl", 1)]
    assert await _keys(c, "处理失败") == [("intl", 1)]
    assert await _keys(c, "款退") == []  # characters side by side, in order
    assert await _keys(c, "ウェブフック") == [("intl", 2)]
    assert await _keys(c, "웹훅") == [("intl", 3)]
    assert await _keys(c, "fullwidth refund") == [("intl", 4)]
    assert await _keys(c, "café") == [("intl", 4)]
    assert await _keys(c, "cafe") == []  # accents count
    assert await _keys(c, "emoji between") == [("intl", 5)]
    assert await _keys(c, "мир") == [("intl", 6)]
    page = await c.search.search("退款")
    assert page.results[0].snippet == "«退款»处理失败，需要重试"


async def test_long_entries_are_found_by_head_and_tail_with_a_snippet_around_the_match(container: Container) -> None:
    c = container
    filler = "lorem ipsum dolor sit amet " * 20_000  # 540 KB
    await _fill(c, "long", [f"START {filler} MIDDLEWORD {filler} FINALWORD"])
    assert await _keys(c, "start") == [("long", 1)]
    assert await _keys(c, "finalword") == [("long", 1)]
    assert await _keys(c, "middleword") == []  # past the indexed head, before the tail
    snippet = (await c.search.search("finalword")).results[0].snippet
    assert "«FINALWORD»" in snippet and snippet.startswith("…") and len(snippet) < 260


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_archived_entries_are_found_and_purged_ones_leave_the_index(settings: Settings, clock: FakeClock) -> None:
    async with Container.build(settings, clock=clock) as c:
        await _fill(c, "old", ["the quarterly refund webhook report", "second entry about webhooks"])
        await _fill(c, "kept", ["a refund webhook that stays"])
        await c.sessions.complete("old", None)
        await c.sessions.set_retention("kept", "legal_hold", "admin")
        clock.advance(7 * DAY + 1)
        assert (await c.lifecycle.run("archive")).changed == 1
        async with c.engine.connect() as conn:
            codecs = (await conn.execute(sa.select(context_entries.c.content_codec).distinct())).scalars().all()
        assert "zlib" in codecs  # really packed

        page = await c.search.search('"refund webhook"')
        assert [(r.session_key, r.sequence_number) for r in page.results] == [("old", 1), ("kept", 1)] or [
            (r.session_key, r.sequence_number) for r in page.results
        ] == [("kept", 1), ("old", 1)]
        old = next(r for r in page.results if r.session_key == "old")
        assert old.snippet == "the quarterly «refund webhook» report"
        assert await _index_rows(c) == 3

        clock.advance(91 * DAY)
        assert (await c.lifecycle.run("purge")).changed == 1
        assert await _keys(c, "refund webhook") == [("kept", 1)]
        assert await _keys(c, "webhooks") == []
        assert await _index_rows(c) == 1


async def test_the_migration_indexes_entries_already_stored_archived_ones_too(settings: Settings) -> None:
    settings.db.auto_migrate = False
    schema = settings.db.schema_name
    container = Container.build(settings)
    made = datetime(2026, 1, 5, tzinfo=UTC)
    try:
        assert (await migrate.upgrade(container.engine, "0004", schema=schema))[1] == "0004"
        async with container.engine.begin() as conn:
            ids = []
            for key, status in (("plain", "active"), ("packed", "archived")):
                ids.append(
                    (
                        await conn.execute(
                            sessions.insert()
                            .values(
                                session_key=key, source_agent="a", owner_agent="a", status=status, meta={},
                                ttl_seconds=3600, entry_count=2, created_at=made, updated_at=made,
                                last_activity_at=made, expires_at=made + timedelta(days=3650), status_changed_at=made,
                            )
                            .returning(sessions.c.id)
                        )
                    ).scalar_one()
                )  # fmt: skip
                await conn.execute(
                    session_participants.insert().values(session_id=ids[-1], agent="a", role="owner", joined_at=made)
                )
            for session_id, packed in zip(ids, (False, True), strict=True):
                for seq, text in enumerate(("legacy refund webhook entry", "退款 legacy"), 1):
                    await conn.execute(
                        context_entries.insert().values(
                            session_id=session_id, sequence_number=seq, context_type="message", agent="a", meta={},
                            content_bytes=len(text.encode()), content_sha256="0" * 64, created_at=made,
                            content="" if packed else text, content_codec="zlib" if packed else "plain",
                            content_packed=zlib.compress(text.encode()) if packed else None,
                        )
                    )  # fmt: skip
        assert (await migrate.upgrade(container.engine, schema=schema))[1] == SCHEMA_HEAD
        assert await container.schema_drift() == []
        assert sorted(await _keys(container, '"refund webhook"')) == [("packed", 1), ("plain", 1)]
        assert sorted(await _keys(container, "退款", session_key="packed")) == [("packed", 2)]
        page = await container.search.search("legacy", session_key="packed")
        assert {r.snippet for r in page.results} == {"«legacy» refund webhook entry", "退款 «legacy»"}
        # New appends are indexed as they are written, next to the migrated ones.
        await container.context.append("plain", "message", "fresh refund webhook", {}, None, None)
        assert len(await _keys(container, '"refund webhook"')) == 3
    finally:
        await container.close()


async def test_an_import_batch_is_indexed_in_its_transaction(container: Container) -> None:
    c = container
    await c.sessions.register("batch", "alice", {}, None)
    result = await c.context.append_batch(
        "batch", [NewContext("tool_call", f"pytest run {i} zebracorn", {}, f"k{i}") for i in range(50)]
    )
    assert result.appended == 50
    assert len(await _keys(c, "zebracorn")) == 50
    again = await c.context.append_batch("batch", [NewContext("tool_call", "pytest run 0 zebracorn", {}, "k0")])
    assert again.appended == 0
    assert len(await _keys(c, "zebracorn")) == 50 and await _index_rows(c) == 50


async def test_only_the_newest_matches_are_ranked(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    import handoff.storage.search

    monkeypatch.setattr(handoff.storage.search, "MAX_RANKED", 5)
    c = container
    await _fill(c, "capped", ["pelican pelican pelican pelican, the best match, but old"])
    await c.context.append_batch(
        "capped", [NewContext("message", f"pelican {i} and a much longer text", {}, f"k{i}") for i in range(7)]
    )
    found = await _keys(c, "pelican")
    assert sorted(found) == [("capped", n) for n in range(4, 9)]  # the newest five
    assert await _keys(c, "pelican", session_key="capped", context_types=["message"]) == found
    assert await _keys(c, "best pelican") == [("capped", 1)]  # a narrower query reaches it


async def test_the_merge_job_tidies_the_index_and_searches_find_the_same(container: Container) -> None:
    c = container
    await c.sessions.register("merged", "alice", {}, None)
    for i in range(40):  # forty transactions: forty small index segments on SQLite
        await c.context.append("merged", "message", f"ocelot report {i}", {}, None, None)
    before = await _keys(c, "ocelot report")
    report = await c.lifecycle.run("merge_search")
    assert report.errors == 0
    if c.engine.dialect.name == "sqlite":
        assert report.changed >= 1  # there was merging to do
        assert (await c.lifecycle.run("merge_search")).changed == 0  # and now there is none
    else:
        assert report.changed == 0  # nothing to do on PostgreSQL
    assert await _keys(c, "ocelot report") == before and len(before) == 40


async def test_a_long_archived_entry_gets_a_snippet_from_its_head(settings: Settings, clock: FakeClock) -> None:
    import random

    rng = random.Random(4)
    noise = " ".join("".join(rng.choice("abcdefghij") for _ in range(8)) for _ in range(40_000))  # packs poorly
    async with Container.build(settings, clock=clock) as c:
        await _fill(c, "bigold", [f"HEADWORD {noise} TAILWORD"])
        await c.sessions.complete("bigold", None)
        clock.advance(7 * DAY + 1)
        assert (await c.lifecycle.run("archive")).changed == 1
        head = (await c.search.search("headword")).results[0].snippet
        assert head.startswith("«HEADWORD»")
        tail = (await c.search.search("tailword")).results
        assert [r.sequence_number for r in tail] == [1]  # found (the index holds the tail) ...
        assert tail[0].snippet.startswith("HEADWORD")  # ... its snippet is the entry's head


async def test_text_that_cannot_be_stored_is_refused_and_odd_text_is_searchable(container: Container) -> None:
    c = container
    await c.sessions.register("odd", "alice", {}, None)
    for bad in ("nul\x00inside", "lone \ud800 surrogate"):
        with pytest.raises(InvalidInput):
            await c.context.append("odd", "message", bad, {}, None, None)
    odd = [
        "combining e\u0301 and RTL \u202eevil\u202c marks",
        "zwj family 👨\u200d👩\u200d👧 emoji and private \ue000 use",
        "ａｂｃ１２３ fullwidth and ﬁ ligature",
        "",
    ]
    for text in odd:
        await c.context.append("odd", "message", text, {}, None, None)
    assert await _keys(c, "evil") == [("odd", 1)]
    assert await _keys(c, "family emoji") == [("odd", 2)]
    assert await _keys(c, "abc123 fi") == [("odd", 3)]
    assert await _index_rows(c) == 4  # the empty entry too: it is simply found by nothing
