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
    r"instead of",
    r"rather than",
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
    r"exactly (?:one|once|the following|as)",
    r"(?:can ?not|can't|may not) (?:\w+ )?(?:modify|change|edit|continue|use|touch|run|install|delete|remove|access)",
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
# Chinese and Japanese write without spaces, so their cues cannot use word boundaries.
_CJK_CUES = {
    "rejected": re.compile(
        r"不行|没用|无效|失败了|行不通|回滚|撤销|撤回|放弃|不再使用|不采用|否决|"
        r"うまくいか|動かな|失敗し|元に戻|取り消|却下|断念|やめ(?:ま|た|る)"
    ),
    "finding": re.compile(
        r"原因|根因|问题在于|问题是|发现|确认了|导致|因为|由于|"
        r"原因は|問題は|判明|分かりました|わかりました|ためです|ことが原因|確認しました"
    ),
    "constraint": re.compile(
        r"不要|不能|不可以|必须|务必|一定要|只能|只需|仅|禁止|无需|不需要|"
        r"しないで|してはいけない|禁止|必ず|のみ|だけ(?:で|に|を)|不要|ないでください"
    ),
    "decision": re.compile(
        r"决定|采用|改用|改为|选择|方案|我会|我将|将使用|已(?:修改|添加|创建|更新|修复|删除)|"
        r"決定|採用|にします|に変更|変更しました|修正しました|追加しました|更新しました|作成しました|削除しました|統一"
    ),
    "task": re.compile(r"下一步|接下来|待办|还需要|尚未|未完成|次に|残り|これから|未対応|まだ"),
}
_HAS_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
_INLINE_CODE = re.compile(r"`[^`\n]*`")

# Narration: the agent saying what it is about to look at. Common, almost never worth a line.
_NARRATION = re.compile(
    r"^(?:(?:now|next|first|then|ok(?:ay)?|great|perfect|good|excellent|alright|sure|so)[,!.]?\s+)*"
    r"(?:let me|let's|i'll|i will|i'm going to|i am going to|i need to|we need to|we'll|we will|i can|i'd like to)\s+"
    r"(?:now\s+|also\s+|first\s+|quickly\s+|then\s+)?(?:look|check|see|run|examine|view|open|search|find|read|start|explore|"
    r"take a look|inspect|verify|understand|investigate|try|test|create|write|look at|first|also|go|get|review|"
    r"analy[sz]e|paste|provide|help|proceed|continue|execute|do|make sure|confirm|correct|retry|re-?run|"
    r"double-check|print|list|locate|show|dig|figure out|summari[sz]e)\b"
    r"|^(?:here is|here are|here's|below is|below are|the following)\b"
    r"|^(?:now,?\s+)?(?:let me|let's|i'll|i will|we'll)\s+use\b.{0,80}?\bto\s+(?:locate|find|search|look|view|open|"
    r"see|check|inspect|navigate|read|list)\b"
    r"|\bsearch/replace\b",
    re.I,
)
_CJK_NARRATION = re.compile(
    r"^(?:好的|好|现在|接下来|首先|然后|那么|下面)?[\uff0c,\u3001\s]*(?:让我|我来|我先|我会先|我将先|我现在|我们来|我们先)"
    r"|^(?:まず|次に|では|それでは)[、,\s]"
    r"|(?:を?(?:確認|調査|検索|参照|整理)し(?:ます|ていきます)|を?(?:見|調べ|開き|探し)ます)。?$"
)
_FILLER = re.compile(
    r"^(?:great|perfect|good|excellent|ok(?:ay)?|alright|sure|thanks|thank you|yes|no|done|got it|"
    r"i see|interesting|hmm+|ah|oh|wait|nice|right)[.!,]*(?:\s+(?:i see|the problem|now|that's it|it works))?[.!]*$",
    re.I,
)
_ENDS_WITH_CODE = re.compile(r"\w[^`]{12,}: `[^`]+`$")
# A command or an assignment that slipped out of a code block: `echo "…"`, `-d "$Q" url`, `FOO=bar ./run.sh`.
_SHELL_LINE = re.compile(
    r"^(?:\$\s+)?(?:(?:echo|export|cd|curl|git|npm|npx|pnpm|yarn|pip3?|python3?|node|docker|kubectl|sed|cat|ls|rm|mkdir|"
    r"chmod|sudo|brew|cargo|make|uv|uvx)\s+\S|-{1,2}[a-zA-Z][\w-]*\s+[\"'$]|[A-Z][A-Z0-9_]+=\S+\s+(?:[A-Z][A-Z0-9_]+=|\./|\w+\s))"
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
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(\[*])|(?<=[\u3002\uff01\uff1f])\s*(?=\S)")
_QUOTE = re.compile(r"^\s*(?:>\s?)+")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_HEADING = re.compile(r"^\s*#{1,6}\s+")

_CATEGORY_WEIGHT = {"rejected": 3.0, "finding": 2.2, "constraint": 2.0, "decision": 1.6, "task": 1.4}
# "instructions": the boilerplate a harness wraps around the task (how to run commands, what not
# to touch): its constraints matter, the rest is the same for every run.
_ROLE_WEIGHT = {"user": 2.5, "assistant": 1.0, "system": 0.4, "instructions": 0.7}


_CODE_AFTER_COLON = re.compile(r"[:\uff1a](?:\*\*)?[ \t]*\n\s*```[^\n]*\n(.*?)(?:```|\Z)", re.S)


def _inline_short_code(match: re.Match[str]) -> str:
    """A short code block after a colon ("the fix is:", "run:") finishes that sentence: keep it inline."""
    lines = [line.strip() for line in match.group(1).split("\n") if line.strip()]
    if not lines:
        return match.group(0)[0] + "\n"
    shown = " ⏎ ".join(lines[:3])
    if len(lines) > 3 or len(shown) > 240:
        shown = clip(shown, 240).rstrip("…") + " …"
    return f"{match.group(0)[0]} `{shown.replace('`', chr(39))}`\n"


def sentences(text: str) -> list[str]:
    """The prose units of a message: sentences and list items, with fenced code left out."""
    text = _FENCE.sub("\n", _CODE_AFTER_COLON.sub(_inline_short_code, text[:MAX_SCAN_CHARS]))
    if "<" in text:
        text = _EXAMPLES.sub("\n", text)
    units: list[str] = []
    for raw_line in text.split("\n"):
        line = _LABEL.sub("", _HEADING.sub("", _BULLET.sub("", _QUOTE.sub("", raw_line))).strip().strip("*_").strip())
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
    if _SHELL_LINE.match(text) or (_looks_like_code_or_output(text) and not _ENDS_WITH_CODE.search(text)):
        return None
    role_weight = _ROLE_WEIGHT.get(role, 1.0)
    hits: list[tuple[str, float]] = []
    prose = _INLINE_CODE.sub(" ", text)  # cue words inside `code` are not the writer's words
    cjk = bool(_HAS_CJK.search(prose))
    for category, pattern in (
        ("rejected", _REJECTED),
        ("finding", _FINDING),
        ("constraint", _CONSTRAINT),
        ("decision", _DECISION),
        ("task", _TASK),
    ):
        if pattern.search(prose) or (cjk and _CJK_CUES[category].search(prose)):
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
    narration = _NARRATION.search(text) or (cjk and _CJK_NARRATION.search(prose))
    if narration and (category not in ("rejected", "finding") or weight < 1.0):
        score -= 2.0
    if text.endswith("?") and role != "user":
        score -= 1.0
    if text.endswith(":") and role != "user" and category != "rejected":
        score -= 1.5  # it introduces a list; the list items carry the content
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
