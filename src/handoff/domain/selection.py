"""Choosing which lines of a brief fit its budget: most new information per token first.

Every section offers lines in its own priority order and has a prior: how much one of its lines
is usually worth to the next agent (a failing test more than one more command). A line's worth
also depends on what the brief already says: a sentence naming a file, a function or a test the
brief has not mentioned yet tells the reader more than one that repeats them. So lines are picked
greedily by prior × novelty ÷ cost among each section's next line, which keeps every section's
own order, lets a bigger budget only ever add lines, and never exceeds the budget.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

# Identifiers start where a word starts: the look-behind turns away every position inside a word
# at once, instead of trying each alternative there (which made this the brief's hottest line).
_IDENT = re.compile(
    r"`[^`\n]{2,80}`|(?<![\w.-])(?:[\w.-]+/[\w./-]+|\w+\.\w{1,5}\b|[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b"
    r"|[A-Za-z][a-z0-9]+(?:[A-Z][a-z0-9]*)+\b|[^\W\d]*\d\w*|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b|[A-Z]{2,}\b)"
)
_WORD = re.compile(r"(?<![^\W\d_])[^\W\d_]{5,}")  # same matches; skips inside words fast
_STOP = frozenset(
    [
        "about",
        "above",
        "after",
        "again",
        "against",
        "because",
        "before",
        "being",
        "below",
        "between",
        "could",
        "doing",
        "during",
        "further",
        "having",
        "other",
        "should",
        "their",
        "there",
        "these",
        "those",
        "through",
        "under",
        "until",
        "while",
        "would",
        "which",
        "where",
        "shall",
        "since",
        "still",
        "first",
        "after",
        "every",
        "never",
        "always",
        "maybe",
        "might",
        "using",
        "instead",
        "tests",
        "test",
        "files",
        "file",
        "added",
        "works",
        "needs",
        "change",
        "changes",
        "entry",
        "entries",
        "output",
        "command",
        "commands",
        "agent",
        "agents",
        "session",
        "brief",
        "passed",
        "failed",
        "error",
    ]
)
# Scripts without spaces between words: count character pairs as terms.
_WIDE = re.compile(r"[\u3040-\u9fff\uac00-\ud7af]{2}")


@functools.lru_cache(maxsize=1024)
def terms(text: str) -> Mapping[str, float]:
    """The distinctive terms of a line, with how much each says (identifiers most).

    Remembered: the lines a brief is made of come from the session's digest, so most of them are
    the same from one brief of a session to its next (a preview, then the handoff itself), and
    finding terms is most of what choosing lines costs.
    """
    found: dict[str, float] = {}
    for match in _IDENT.findall(text):
        found[match.strip("`").lower()] = 1.0
    for word in _WORD.findall(text):
        lowered = word.lower()
        if lowered not in _STOP:
            found.setdefault(lowered, 0.3)
    if not text.isascii():
        for pair in _WIDE.findall(text):
            found.setdefault(pair, 0.25)
    return found


_SMALLEST_LINE = 12  # tokens: with less room left, a section's remaining lines are not looked at


@dataclass(slots=True)
class Section:
    title: str
    prior: float
    # (display order, text), in the section's priority order; a text may be a function that makes
    # it, so lines that are never looked at (the older history on a small budget) cost nothing.
    candidates: list[tuple[int, str | Callable[[], str]]]
    decay: float = 0.93  # each further line of a section is worth a little less
    cap: float = 1.0  # most of the budget this section may take (the task, a long note)
    chosen: list[tuple[int, str]] = field(default_factory=list)
    used: int = 0
    next_index: int = 0


def select(sections: list[Section], room: int, cost: Callable[[str], int], clip: Callable[[str, int], str]) -> int:
    """Fill the sections' `chosen` lines within `room` tokens; return the tokens used."""
    used = 0
    known: set[str] = set()
    prices: dict[str, int] = {}

    def price_of(text: str) -> int:
        found = prices.get(text)
        if found is None:
            found = prices[text] = cost(text)
        return found

    # Each section's next line as last weighed: (text, price, value). It stays true until the line
    # no longer fits, its section takes a line, or a chosen line makes one of its terms known;
    # weighing every section's line afresh on every pick was most of what choosing cost.
    weighed: dict[int, tuple[str, int, float]] = {}
    weighed_by_term: dict[str, set[int]] = {}  # which sections' weighed lines hold a term
    open_sections = list(sections)
    while True:
        best: tuple[float, Section, str, int] | None = None
        for section in open_sections:
            limit = min(room - used, int(room * section.cap) - section.used)
            last = weighed.get(id(section))
            if (
                last is not None
                and last[1] <= limit
                and section.next_index < len(section.candidates)
                and section.candidates[section.next_index][1] is last[0]
            ):
                if best is None or last[2] > best[0]:
                    best = (last[2], section, last[0], last[1])
                continue
            while section.next_index < len(section.candidates):
                order, made = section.candidates[section.next_index]
                text = made() if callable(made) else made
                if not text:
                    section.next_index += 1
                    continue
                section.candidates[section.next_index] = (order, text)
                overhead = 0 if section.chosen else price_of(f"\n## {section.title}")
                price = price_of(text) + overhead
                if price > limit:
                    cut = clip(text, limit - overhead - 1) if limit - overhead >= 40 and price_of(text) > 60 else ""
                    if not cut:
                        # Too big: a shorter next line may fit, unless there is no room for any line.
                        section.next_index = (
                            len(section.candidates) if limit < _SMALLEST_LINE else section.next_index + 1
                        )
                        continue
                    section.candidates[section.next_index] = (order, cut)
                    text, price = cut, price_of(cut) + overhead
                novelty = sum(weight for term, weight in terms(text).items() if term not in known)
                worth = section.prior * (section.decay ** len(section.chosen)) * (0.4 + min(novelty, 8.0))
                value = worth / max(price, 1)
                weighed[id(section)] = (text, price, value)
                for term in terms(text):
                    weighed_by_term.setdefault(term, set()).add(id(section))
                if best is None or value > best[0]:
                    best = (value, section, text, price)
                break
        if best is None:
            return used
        _, section, text, price = best
        order, _ = section.candidates[section.next_index]
        section.chosen.append((order, text))
        section.next_index += 1
        section.used += price
        used += price
        added = [term for term in terms(text) if term not in known]
        known.update(added)
        weighed.pop(id(section), None)
        for term in added:
            for key in weighed_by_term.pop(term, ()):
                weighed.pop(key, None)
        open_sections = [s for s in open_sections if s.next_index < len(s.candidates)]
