"""Full-text search, the parts every backend shares: the query syntax, the text that is indexed, snippets.

One syntax, parsed here into a small tree that the storage adapters render for their own engine
(SQLite FTS5 MATCH, PostgreSQL tsquery). Nothing the caller typed reaches either engine's syntax:
every term is reduced to words of letters and digits first, so an operator, quote or bracket in a
query can only ever be a separator.

    refund webhook        entries holding both words, anywhere (an entry holding them side by side
                          ranks higher)
    "refund webhook"      the exact phrase: the words next to each other, in this order
    refun*                any word starting with "refun" (at least 3 letters before the *)
    webhook OR callback   either word; OR joins the words or phrases on each side of it
    -stripe               leave out entries holding "stripe"

Words match whole and case-insensitively, accents included (café is not cafe); punctuation splits
words, so `src/app.py` or `refund_webhook` find the same words written any way (as a phrase).
Chinese, Japanese and Korean text is searched character by character, as a phrase: `退款` finds
the characters 退款 side by side.

Indexing reduces an entry's text the same way (see `index_text`): each backend only ever splits on
spaces, so both find the same entries for the same query.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from handoff.domain.models import ContextType
from handoff.errors import InvalidInput

MAX_QUERY_CHARS = 500
# A search ranks at most this many matches: the newest ones. Ranking reads every candidate, so a
# word found in 150,000 entries would cost seconds; the newest 2,000 of them cost milliseconds, and
# more words (or a session, a type) narrow a query to what is wanted.
MAX_RANKED = 2000
MAX_QUERY_WORDS = 32
MIN_PREFIX_CHARS = 3
# What is indexed of one entry: the first 96 Ki and the last 32 Ki characters of its reduced text.
# Bounded so one 8 MiB log costs what a long message does, and PostgreSQL's limits on one tsvector
# (1 MiB, positions up to 16,383) are never reached; the head and tail are where a long output's
# command, first error and summary are.
INDEX_HEAD_CHARS = 96 * 1024
INDEX_TAIL_CHARS = 32 * 1024
MAX_WORD_CHARS = 64  # longer "words" are hashes, base64 and minified code: left out of the index

SNIPPET_CHARS = 200
SNIPPET_LEAD = 60
HIGHLIGHT = ("«", "»")

# Han, kana, hangul, bopomofo and their compatibility forms: written without spaces between words,
# so each character is a word of its own (a query of several is a phrase of single characters).
_CJK_CLASS = (
    "\u1100-\u11ff\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0003134f"
)
_CJK = re.compile(f"[{_CJK_CLASS}]")
_WORD_CHAR = r"[^\W_]"


def index_text(text: str) -> str:
    """The words of `text` as the index holds them: NFKC, case-folded, separated by single spaces.

    Of a long text, the words of its first INDEX_HEAD_CHARS and last INDEX_TAIL_CHARS characters
    (reduced): the work is bounded by those, not by the text's length (an 8 MiB log costs ~50 ms).
    """
    if len(text) <= _RAW_HEAD + _RAW_TAIL:
        reduced = _reduce(text)
        if len(reduced) <= INDEX_HEAD_CHARS + INDEX_TAIL_CHARS:
            return reduced
        head, tail = reduced, reduced
    else:
        head, tail = _reduce(text[:_RAW_HEAD]), _reduce(text[-_RAW_TAIL:])
    head = head[:INDEX_HEAD_CHARS].rsplit(" ", 1)[0] if len(head) > INDEX_HEAD_CHARS else head
    tail = tail[-INDEX_TAIL_CHARS:].split(" ", 1)[-1] if len(tail) > INDEX_TAIL_CHARS else tail
    return f"{head} {tail}".strip()


# Raw characters read for the head and the tail: reducing only shortens text, except where NFKC
# expands a character or a CJK character gains a space, so four times the indexed length is ample.
_RAW_HEAD = 4 * INDEX_HEAD_CHARS
_RAW_TAIL = 4 * INDEX_TAIL_CHARS
# ASCII text (most of what agents write) takes a fast path: NFKC leaves it alone, lower() is its
# case fold, and one translate() replaces the separators.
_ASCII_SEPARATORS = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})


def _reduce(text: str) -> str:
    if text.isascii():
        spaced = text.lower().translate(_ASCII_SEPARATORS)
    else:
        # One pass either way: a table for just the characters this text holds (a few hundred,
        # whatever its length) turns separators into spaces and sets each CJK character apart.
        spaced = unicodedata.normalize("NFKC", text).casefold()
        table: dict[int, str] = {}
        for char in set(spaced):
            if _CJK.match(char):
                table[ord(char)] = f" {char} "
            elif not char.isalnum():  # what the regexes below call a separator, [\W_]
                table[ord(char)] = " "
        spaced = spaced.translate(table)
    words = spaced.split()
    if any(len(w) > MAX_WORD_CHARS for w in words):
        words = [w for w in words if len(w) <= MAX_WORD_CHARS]
    return " ".join(words)


def _words(text: str) -> list[str]:
    reduced = index_text(text)
    return reduced.split(" ") if reduced else []


@dataclass(frozen=True, slots=True)
class Word:
    text: str  # reduced: letters and digits only, case-folded
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Term:
    """One word, or a phrase: words that must stand next to each other, in order."""

    words: tuple[Word, ...]

    @property
    def is_phrase(self) -> bool:
        return len(self.words) > 1


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """All of `groups` must match (each group: any one of its terms); none of `excluded` may."""

    groups: tuple[tuple[Term, ...], ...]
    excluded: tuple[Term, ...]

    def proximity_phrase(self) -> Term | None:
        """For a query of several plain words, the phrase of them all as typed: entries holding it
        rank above entries where the words are scattered (it never changes which entries match)."""
        if len(self.groups) < 2 or any(len(g) != 1 or g[0].is_phrase for g in self.groups):
            return None
        return Term(tuple(g[0].words[0] for g in self.groups))

    def positive_terms(self) -> list[Term]:
        return [term for group in self.groups for term in group]

    def fingerprint(self) -> str:
        """Identifies the query as parsed (cursors carry it: a page of one search is not another's)."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One entry a search found, best first: `score` is higher for a better match (comparable only
    within one search), `text` the entry's own text (the part the index holds) for its snippet."""

    entry_id: int
    session_key: str
    sequence_number: int
    context_type: ContextType
    agent: str
    score: float
    text: str


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, {"field": "query"})


# A chunk: an optional '-', then a quoted phrase (closing quote optional) or a run of non-space text.
_CHUNK = re.compile(r'(-?)(?:"([^"]*)"?|([^\s"]+))')


def parse_query(query: str) -> SearchQuery:
    """Parse the documented syntax; anything it cannot mean is `invalid_input` naming `query`."""
    if not isinstance(query, str) or not query.strip():
        raise _invalid("query must not be empty: give one or more words to search for")
    if len(query) > MAX_QUERY_CHARS:
        raise _invalid(f"query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
    groups: list[list[Term]] = []
    excluded: list[Term] = []
    pending_or = False
    for match in _CHUNK.finditer(query):
        minus, phrase, bare = match.group(1), match.group(2), match.group(3)
        if phrase is None and minus == "" and bare in ("OR", "|"):
            if not groups or pending_or:
                raise _invalid("OR needs a word or phrase on each side (e.g. webhook OR callback)")
            pending_or = True
            continue
        if phrase is None and minus == "" and bare == "AND":
            continue  # words are ANDed anyway
        term = _term(phrase if phrase is not None else bare, quoted=phrase is not None)
        if term is None:
            continue  # only punctuation: a separator
        if minus:
            if pending_or:
                raise _invalid("an excluded word (-word) cannot be one side of an OR")
            excluded.append(term)
        elif pending_or:
            groups[-1].append(term)
            pending_or = False
        else:
            groups.append([term])
    if pending_or:
        raise _invalid("OR needs a word or phrase on each side (e.g. webhook OR callback)")
    if not groups:
        if excluded:
            raise _invalid("query needs at least one word to find besides the excluded (-word) ones")
        raise _invalid("query has no words to search for (letters or digits)")
    words = sum(len(t.words) for t in [*(t for g in groups for t in g), *excluded])
    if words > MAX_QUERY_WORDS:
        raise _invalid(f"query has {words} words; the limit is {MAX_QUERY_WORDS}")
    return SearchQuery(tuple(tuple(g) for g in groups), tuple(excluded))


def _term(text: str, *, quoted: bool) -> Term | None:
    """The words of one chunk; a chunk that splits into several words is a phrase of them."""
    words: list[Word] = []
    pieces = text.split() if quoted else [text]
    for piece in pieces:
        star = piece.endswith("*")
        found = _words(piece)
        if not found:
            continue
        if star:
            last = found[-1]
            if not _CJK.fullmatch(last) and len(last) < MIN_PREFIX_CHARS:
                raise _invalid(
                    f"'{piece}' is too short a prefix: give at least {MIN_PREFIX_CHARS} letters before the *"
                )
            # A single CJK character is a whole word already: its "prefix" is itself.
            found[-1] = last if _CJK.fullmatch(last) else last + "*"
        words.extend(Word(w[:-1], True) if w.endswith("*") else Word(w) for w in found)
    return Term(tuple(words)) if words else None


# -- snippets -----------------------------------------------------------------------------------


def _word_pattern(word: Word) -> str:
    body = re.escape(word.text)
    before = "" if _CJK.match(word.text) else rf"(?<!{_WORD_CHAR})"
    after = rf"{_WORD_CHAR}*" if word.prefix else ("" if _CJK.match(word.text[-1]) else rf"(?!{_WORD_CHAR})")
    return before + body + after


def _term_pattern(term: Term) -> str:
    return r"[\W_]*".join(_word_pattern(w) for w in term.words)


def highlighter(query: SearchQuery) -> re.Pattern[str]:
    """Matches what the query's terms found, in an entry's own text (case-insensitively)."""
    proximity = query.proximity_phrase()
    found = [*query.positive_terms(), *([proximity] if proximity else [])]
    terms = sorted(found, key=lambda t: -len(t.words))  # phrases before their words: marked as one
    return re.compile("|".join(f"(?:{_term_pattern(t)})" for t in terms), re.IGNORECASE)


def snippet(text: str, pattern: re.Pattern[str], *, width: int = SNIPPET_CHARS) -> str:
    """A one-line excerpt of `text` around the first match, matches marked «like this»."""
    found = pattern.search(text)
    start = 0
    if found is not None and found.start() > SNIPPET_LEAD:
        start = found.start() - SNIPPET_LEAD
        space = text.find(" ", start, found.start())
        if 0 <= space < start + 20:
            start = space + 1
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", max(start, end - 20), end)
        if space > start:
            end = space
    window = text[start:end]
    marked = pattern.sub(lambda m: f"{HIGHLIGHT[0]}{m.group(0)}{HIGHLIGHT[1]}", window) if found else window
    line = " ".join(marked.split())
    return ("…" if start > 0 else "") + line + ("…" if end < len(text) else "")
