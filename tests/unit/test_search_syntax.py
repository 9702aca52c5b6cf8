"""The search query syntax and what is indexed: pure functions, no database."""

from __future__ import annotations

import pytest

from handoff.domain.search import (
    INDEX_HEAD_CHARS,
    INDEX_TAIL_CHARS,
    SearchQuery,
    Term,
    Word,
    highlighter,
    index_text,
    parse_query,
    snippet,
)
from handoff.errors import InvalidInput


def words(*texts: str, prefix: bool = False) -> Term:
    return Term(tuple(Word(t, prefix and i == len(texts) - 1) for i, t in enumerate(texts)))


def test_index_text_keeps_letters_and_digits_folded_and_spaced() -> None:
    assert (
        index_text("Edited src/Billing/refund_webhook.py:42 — DONE!") == "edited src billing refund webhook py 42 done"
    )
    assert index_text("Ｆｕｌｌｗｉｄｔｈ Straße") == "fullwidth strasse"
    assert index_text("退款处理 ok") == "退 款 处 理 ok"
    assert index_text("a" * 65 + " kept") == "kept"  # hashes and blobs are not words
    assert index_text("\x00\ud800 tab\tnew\nline") == "tab new line"
    assert index_text("") == ""


def test_index_text_of_a_long_entry_is_its_head_and_tail() -> None:
    text = "start " + "word " * 100_000 + "finish"
    reduced = index_text(text)
    assert len(reduced) <= INDEX_HEAD_CHARS + INDEX_TAIL_CHARS + 1
    assert reduced.startswith("start word") and reduced.endswith("word finish")
    assert "  " not in reduced


def test_the_syntax() -> None:
    assert parse_query("refund webhook") == SearchQuery(((words("refund"),), (words("webhook"),)), ())
    assert parse_query('"Refund WebHook"') == SearchQuery(((words("refund", "webhook"),),), ())
    assert parse_query("refun*") == SearchQuery(((words("refun", prefix=True),),), ())
    assert parse_query('"refund web*"') == SearchQuery(((words("refund", "web", prefix=True),),), ())
    assert parse_query("a OR b c") == SearchQuery(((words("a"), words("b")), (words("c"),)), ())
    assert parse_query('x -y -"z w"') == SearchQuery(((words("x"),),), (words("y"), words("z", "w")))
    assert parse_query("src/app.py") == SearchQuery(((words("src", "app", "py"),),), ())
    assert parse_query("退款") == SearchQuery(((words("退", "款"),),), ())
    assert parse_query('unterminated "quote here') == parse_query('unterminated "quote here"')
    assert parse_query("NEAR( a AND b") == SearchQuery(((words("near"),), (words("a"),), (words("b"),)), ())


def test_a_query_of_plain_words_ranks_them_side_by_side_higher() -> None:
    assert parse_query("refund webhook").proximity_phrase() == words("refund", "webhook")
    assert parse_query("refund").proximity_phrase() is None
    assert parse_query('"refund webhook" retry').proximity_phrase() is None
    assert parse_query("refund OR webhook").proximity_phrase() is None


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("*", "no words"),
        ('""', "no words"),
        ("-a", "besides the excluded"),
        ("a OR", "OR needs"),
        ("OR a", "OR needs"),
        ("a OR OR b", "OR needs"),
        ("a OR -b", "cannot be one side of an OR"),
        ("re*", "too short a prefix"),
        ("x" * 501, "limit is 500"),
        (" ".join(["w"] * 33), "limit is 32"),
    ],
)
def test_what_the_syntax_cannot_mean_is_invalid_input_naming_query(query: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as error:
        parse_query(query)
    assert error.value.details == {"field": "query"}


def test_snippets_mark_matches_around_the_first_one() -> None:
    pattern = highlighter(parse_query("refund webhook"))
    assert snippet("We chose the Refund webhook.", pattern) == "We chose the «Refund webhook»."
    long = "filler words here " * 20 + "then the refund and later the webhook " + "tail words " * 30
    cut = snippet(long, pattern)
    assert cut.startswith("…") and cut.endswith("…")
    assert "«refund»" in cut and "«webhook»" in cut and len(cut) <= 200 + 2 + 4  # the window, two …, four marks
    assert snippet("no match\n\nat all", pattern) == "no match at all"
    prefix = highlighter(parse_query("refun*"))
    assert snippet("refunds, refunding; prefund", prefix) == "«refunds», «refunding»; prefund"
    cjk = highlighter(parse_query("退款"))
    assert snippet("申请退款处理", cjk) == "申请«退款»处理"
