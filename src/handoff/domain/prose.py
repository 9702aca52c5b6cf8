"""Finding the sentences in agents' and users' prose that the next agent must not miss.

Nobody writes `Decision:` in front of a decision. People write "the root cause is …", "I'll use X
instead", "that didn't work, reverting", "don't touch the migrations". We split prose into
sentences (fenced code left out), give each a category by the cue phrases it holds and a score that
rewards the user's own words, rare categories (rejections, constraints) and concrete identifiers
(file names, functions, tests), and penalises narration ("Let me look at the file").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SENTENCE_CHARS = 400
MAX_SCAN_CHARS = 24_000


@dataclass(frozen=True, slots=True)
class Salient:
    text: str
    category: str  # finding | decision | rejected | constraint | task
    score: float


def _cues(*phrases: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w'])(?:" + "|".join(phrases) + r")(?![\w])", re.I)


_REJECTED = _cues(
    r"did(?:n'?t| not) (?:work|help|fix|solve|pass|change anything)",
    r"does(?:n'?t| not) (?:work|help|fix|solve)",
    r"(?:is|was)(?:n'?t| not) (?:working|enough|the (?:right|correct) (?:fix|approach|way))",
    r"won'?t work",
    r"reverted?",
    r"reverting",
    r"roll(?:ed|ing)? back",
    r"undo(?:ne)?",
    r"undid",
    r"back(?:ed)? out",
    r"not going to",
    r"gave up on",
    r"giving up on",
    r"abandon(?:ed|ing)?",
    r"dead end",
    r"wrong (?:approach|fix|direction|file|place)",
    r"that (?:broke|breaks)",
    r"(?:broke|breaks) (?:other|existing|the other)",
    r"instead of",
    r"rather than",
    r"no longer (?:needed|necessary|use)",
    r"rejected",
    r"discard(?:ed)?",
    r"scrap(?:ped)?",
    r"drop(?:ped)? (?:the|this|that) (?:idea|approach|change)",
    r"still (?:fails|failing|broken)",
    r"not the (?:issue|problem|cause)",
)
_FINDING = _cues(
    r"root cause",
    r"the (?:real |actual |underlying )?(?:issue|problem|bug|culprit|cause|reason) (?:is|was|seems|appears|lies|comes)",
    r"(?:is|was|are) caused by",
    r"because",
    r"turns out",
    r"it seems",
    r"found (?:that|the)",
    r"(?:i|we) (?:see|found|noticed|discovered|realized|realised|understand)",
    r"the (?:fix|solution|answer) (?:is|was|should)",
    r"this (?:means|happens|occurs|is why|explains)",
    r"the (?:error|failure|exception) (?:is|comes|happens|occurs)",
    r"fails? (?:because|when|with)",
    r"is (?:missing|wrong|incorrect|broken|undefined|not (?:defined|set|called|handled))",
    r"(?:confirmed|verified|reproduced)",
    r"works? (?:now|correctly|as expected)",
    r"(?:all|the) tests? (?:now )?pass",
    r"successfully",
)
_DECISION = _cues(
    r"(?:i|we)(?:'ll| will| are going to|'m going to| am going to| decided| chose| should| need to| can)",
    r"let'?s (?:use|go with|switch|change|keep|add|implement|make|move|replace|refactor|fix|try)",
    r"(?:decided|decision|going with|opted|settled on|plan is|approach is|strategy)",
    r"the (?:best|right|correct|cleanest|simplest) (?:way|approach|fix|solution|option)",
    r"switch(?:ed|ing)? to",
    r"(?:use|using) \S+ instead",
    r"replace[sd]? \S+ with",
    r"(?:implemented|added|created|modified|updated|changed|fixed|refactored|moved|renamed|removed)",
)
_CONSTRAINT = _cues(
    r"do(?:n'?t| not)",
    r"must(?:n'?t| not)?",
    r"never",
    r"always",
    r"only",
    r"should(?:n'?t| not)",
    r"make sure",
    r"ensure",
    r"without",
    r"avoid",
    r"keep",
    r"preserve",
    r"no need to",
    r"not allowed",
    r"required?",
    r"also (?:add|write|update|include|handle|test|check|make)",
    r"has to",
    r"have to",
    r"needs? to",
    r"backward[s]? compatib\w*",
    r"under no circumstances",
)
_TASK = _cues(
    r"next,? (?:i|we)(?:'ll| will| need| should| have)",
    r"next steps?",
    r"(?-i:TODO)",
    r"still (?:need|needs|have|has) to",
    r"remaining (?:work|tasks?|steps?|issues?|items?|failures?)",
    r"left to do",
    r"not (?:done|finished|implemented|fixed) yet",
    r"yet to be",
    r"follow[- ]up",
    r"then (?:i|we)(?:'ll| will)",
)
# Narration: the agent saying what it is about to look at. Common, almost never worth a line.
_NARRATION = re.compile(
    r"^(?:(?:now|next|first|ok(?:ay)?|great|perfect|good|excellent|alright|sure)[,!.]?\s+)*"
    r"(?:let me|let's|i'll|i will|i'm going to|i need to|we need to)\s+"
    r"(?:now\s+)?(?:look|check|see|run|examine|view|open|search|find|read|start|explore|take a look|"
    r"inspect|verify|understand|investigate|try|test|create|write|look at|first|also|go|get|review|analy[sz]e)\b",
    re.I,
)
_FILLER = re.compile(
    r"^(?:great|perfect|good|excellent|ok(?:ay)?|alright|sure|thanks|thank you|yes|no|done|got it|"
    r"i see|interesting|hmm+)[.!]*$",
    re.I,
)
_IDENTIFIER = re.compile(
    r"`[^`\n]{2,80}`"
    r"|\b[\w.-]+/[\w./-]+\b"
    r"|\b\w+\.(?:py|pyi|js|jsx|ts|tsx|go|rs|java|kt|rb|c|h|cc|cpp|hpp|cs|php|swift|md|json|ya?ml|toml|ini|cfg|sh|sql|html|css)\b"
    r"|\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b"
    r"|\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+\b"
    r"|\b\w+\(\)"
    r"|\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*){2,}\b"
)
_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_EXAMPLES = re.compile(r"<(example\w*|demonstration\w*)>.*?(?:</\1>|\Z)", re.S | re.I)
_LABEL = re.compile(
    r"^(?:THOUGHT|Thought|DISCUSSION|Discussion|REASONING|Reasoning|ANALYSIS|Analysis|Observation)\s*:\s*"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(\[*])")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_HEADING = re.compile(r"^\s*#{1,6}\s+")

_CATEGORY_WEIGHT = {"rejected": 3.0, "finding": 2.2, "constraint": 2.0, "decision": 1.6, "task": 1.4}
# "instructions": the boilerplate a harness wraps around the task (how to run commands, what not
# to touch): its constraints matter, the rest is the same for every run.
_ROLE_WEIGHT = {"user": 2.5, "assistant": 1.0, "system": 0.4, "instructions": 0.7}


def sentences(text: str) -> list[str]:
    """The prose units of a message: sentences and list items, with fenced code left out."""
    text = _FENCE.sub("\n", text[:MAX_SCAN_CHARS])
    if "<" in text:
        text = _EXAMPLES.sub("\n", text)
    units: list[str] = []
    for raw_line in text.split("\n"):
        line = _LABEL.sub("", _HEADING.sub("", _BULLET.sub("", raw_line)).strip().strip("*_").strip())
        if not line:
            continue
        for part in _SENTENCE_END.split(line):
            part = " ".join(part.split())
            if part:
                units.append(part)
    return units


def identifiers(text: str) -> list[str]:
    return _IDENTIFIER.findall(text)


def score_sentence(text: str, role: str, only: frozenset[str] | None = None) -> Salient | None:
    """The sentence's category and score, or None when it carries nothing worth keeping."""
    words = text.split()
    if word_count(text) < 3 or len(text) < 8 or _FILLER.match(text):
        return None
    if _looks_like_code_or_output(text):
        return None
    role_weight = _ROLE_WEIGHT.get(role, 1.0)
    hits: list[tuple[str, float]] = []
    for category, pattern in (
        ("rejected", _REJECTED),
        ("finding", _FINDING),
        ("constraint", _CONSTRAINT),
        ("decision", _DECISION),
        ("task", _TASK),
    ):
        if pattern.search(text):
            hits.append((category, _CATEGORY_WEIGHT[category]))
    if role not in ("user", "instructions"):
        # Constraints are the user's to set; an agent "must"-ing to itself is usually narration.
        hits = [(c, w * 0.5) if c == "constraint" else (c, w) for c, w in hits]
    if only is not None:
        hits = [h for h in hits if h[0] in only]
        if not hits:
            return None
    if not hits:
        if role == "user":
            hits = [("decision", 0.8)]
        elif identifiers(text) and role in ("assistant", ""):
            # No cue we know (another language, terse notes) but concrete names: worth a low rank.
            hits = [("finding", 0.7)]
        else:
            return None
    category, weight = max(hits, key=lambda h: h[1])
    score = weight + 0.3 * (len(hits) - 1)
    ids = len(identifiers(text))
    score += min(ids, 3) * 0.45
    if _NARRATION.match(text) and category not in ("rejected", "finding"):
        score -= 2.0
    if text.endswith("?") and role != "user":
        score -= 1.0
    if len(words) > 70 or len(text) > 600:
        score -= 0.5
    score *= role_weight
    if score <= 0.9:
        return None
    return Salient(text=clip(text, MAX_SENTENCE_CHARS), category=category, score=round(score, 2))


_LETTER = re.compile(r"[^\W\d_]")
_SYMBOL = re.compile(r"[{}\[\]()<>=;|\\$#@]")
_WIDE_CHAR = re.compile(r"[\u3040-\u9fff\uac00-\ud7af]")


def _looks_like_code_or_output(text: str) -> bool:
    letters = len(_LETTER.findall(text))
    return letters < len(text) * 0.45 or len(_SYMBOL.findall(text)) > len(text) * 0.12


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.7:
        cut = cut[:space]
    return cut.rstrip() + "…"


_STEER = (
    r"(?:ok(?:ay)?|yes|yep|yeah|sure|go|go ahead|go on|continue|proceed|do it|please|please continue|keep going|"
    r"thanks|thank you|lgtm|looks good|sounds good|great|perfect|nice|good|correct|right|agreed|approved|next|"
    r"try again|(?:now )?(?:please )?(?:re-?run|run) (?:the )?tests? (?:again|now)|"
    r"let'?s (?:do|realize|implement|start|go with|execute) (?:it|that|this|our plan|the plan))"
)
_LOW_INFORMATION = re.compile(rf"^{_STEER}(?:[\s.!,]+{_STEER})*[\s.!,]*$", re.I)


_SETTING = re.compile(r"^\s*[\w.-]+\s*[=:]\s*\S+\s*$")


def word_count(text: str) -> int:
    """Words, counting two CJK characters as one (those scripts do not separate words by spaces)."""
    return len(text.split()) + len(_WIDE_CHAR.findall(text)) // 2


def is_low_information(text: str) -> bool:
    """A user message that steers without content ("ok", "continue", "run the tests again", "x=y")."""
    words = word_count(text)
    if _SETTING.match(text) or words <= 2:
        return True
    if words > 12 or identifiers(text):
        return False
    return bool(_LOW_INFORMATION.match(text.strip()))
