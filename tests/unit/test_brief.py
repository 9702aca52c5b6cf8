"""Rendering the handoff brief: section order, the token budget, determinism, Unicode."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from handoff.domain.brief import MIN_TOKEN_BUDGET, BriefContext, estimate_tokens, render_brief
from handoff.domain.digest import Digest
from handoff.domain.models import ContextType, HandoffType

SECTIONS = [
    "Handoff note",
    "Last request",
    "Open tasks",
    "Failing tests",
    "Decisions",
    "Rejected approaches",
    "Files touched",
    "Tools used",
    "Original request",
    "Recent messages",
]


def context(request_data: dict[str, Any] | None = None, **overrides: Any) -> BriefContext:
    values: dict[str, Any] = {
        "session_key": "proj-42",
        "source_agent": "claude",
        "target_agent": "codex",
        "handoff_type": HandoffType.FULL_HANDOFF,
        "request_data": request_data if request_data is not None else {},
        "up_to_sequence": 0,
    }
    values.update(overrides)
    return BriefContext(**values)


def fold(entries: list[tuple[ContextType, str, dict[str, Any]]], agent: str = "claude") -> Digest:
    digest = Digest()
    for seq, (kind, content, metadata) in enumerate(entries, start=1):
        digest.absorb(seq=seq, context_type=kind, content=content, metadata=metadata, agent=agent)
    return digest


def full_digest() -> Digest:
    return fold(
        [
            (ContextType.MESSAGE, "Build the importer", {"role": "user"}),
            (ContextType.MESSAGE, "Decision: stream rows\nRejected: load all in memory\nTODO: handle BOM", {}),
            (ContextType.FILE, "...", {"path": "src/importer.py", "action": "edited"}),
            (ContextType.TOOL_CALL, "FAILED tests/test_importer.py::test_bom - UnicodeError", {"tool": "pytest"}),
            (ContextType.MESSAGE, "Now also support gzip input", {"role": "user"}),
            (ContextType.MESSAGE, "On it.", {"role": "assistant"}),
        ]
    )


def headings(text: str) -> list[str]:
    return re.findall(r"^## (.+)$", text, re.M)


def random_digest(rng: random.Random) -> Digest:
    alphabet = [
        "fix",
        "the",
        "parser",
        "retry",
        "数据库",
        "連線",
        "ошибка",
        "🙂",
        "naïve",
        "`code`",
        "**bold**",
        "x" * 40,
    ]

    def text() -> str:
        return " ".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80)))

    digest = Digest()
    for seq in range(1, rng.randint(0, 150) + 1):
        kind = rng.choice(list(ContextType))
        meta: dict[str, Any] = {}
        content = text()
        if kind is ContextType.MESSAGE:
            content = rng.choice(["Decision: ", "TODO: ", "Rejected: ", "DONE: ", ""]) + content
            meta["role"] = rng.choice(["user", "assistant", ""])
        elif kind is ContextType.FILE:
            meta = {"path": f"src/{rng.choice(alphabet)}/{seq}.py", "action": rng.choice(["read", "edited"])}
        elif kind is ContextType.TOOL_CALL:
            meta = {"tool": rng.choice(["pytest", "bash", "grep", "编辑器"]), "exit_code": rng.choice([0, 1])}
            content = f"FAILED tests/test_{seq}.py::test_{rng.choice(alphabet)}\n{content}"
        digest.absorb(seq=seq, context_type=kind, content=content, metadata=meta, agent=f"agent-{seq % 3}")
    return digest


def random_request_data(rng: random.Random) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for i in range(rng.randint(0, 4)):
        data[f"k{i}"] = rng.choice(["continue the work", "请继续", {"nested": [1, 2, "三"]}, 42, "y" * 2000])
    return data


def test_full_brief_contains_every_section_in_priority_order() -> None:
    rendered = render_brief(full_digest(), context({"note": "please finish gzip"}, up_to_sequence=6), 5000)
    assert headings(rendered.text) == SECTIONS
    assert not rendered.truncated
    assert rendered.text.startswith("# Handoff brief: session `proj-42`")
    assert "From **claude** to **codex** (full_handoff" in rendered.text
    assert "History: 6 entries (1 file, 4 message, 1 tool_call), up to #6." in rendered.text
    assert "> Now also support gzip input" in rendered.text
    assert "- (#2) handle BOM" in rendered.text
    assert "`tests/test_importer.py::test_bom` (#4)" in rendered.text
    assert "- (#2) stream rows" in rendered.text
    assert "- (#2) load all in memory" in rendered.text
    assert "`src/importer.py` (edited x1, last #3)" in rendered.text
    assert "- pytest x1" in rendered.text
    assert "> Build the importer" in rendered.text
    assert "claude (assistant): On it." in rendered.text
    assert rendered.tokens == estimate_tokens(rendered.text)


def test_request_data_is_rendered_as_the_handoff_note() -> None:
    rendered = render_brief(
        Digest(), context({"goal": "ship v2", "files": ["a.py", "b.py"], "urgent": True, "cjk": "继续"}), 2000
    )
    assert headings(rendered.text) == ["Handoff note"]
    assert "- goal: ship v2" in rendered.text
    assert '- files: ["a.py", "b.py"]' in rendered.text
    assert "- urgent: true" in rendered.text
    assert "- cjk: 继续" in rendered.text


def test_empty_digest_renders_header_only() -> None:
    rendered = render_brief(Digest(), context(), 500)
    assert headings(rendered.text) == []
    assert "History: 0 entries (no entries), up to #0." in rendered.text
    assert not rendered.truncated


@pytest.mark.parametrize("handoff_type", list(HandoffType))
def test_header_states_the_handoff_effect(handoff_type: HandoffType) -> None:
    text = render_brief(Digest(), context(handoff_type=handoff_type), 500).text
    assert f"({handoff_type.value}: " in text


def test_original_request_is_omitted_when_it_is_the_last_request() -> None:
    digest = fold([(ContextType.MESSAGE, "only one request", {"role": "user"})])
    text = render_brief(digest, context(), 2000).text
    assert "Last request" in headings(text)
    assert "Original request" not in headings(text)


def test_tight_budget_keeps_high_priority_sections_and_notes_the_cut() -> None:
    digest = full_digest()
    for seq in range(7, 60):
        digest.absorb(
            seq=seq,
            context_type=ContextType.MESSAGE,
            content=f"Decision: choice number {seq} " + "with a long justification " * 8,
            metadata={},
            agent="claude",
        )
    rendered = render_brief(digest, context(up_to_sequence=59), 300)
    found = headings(rendered.text)
    assert found[:2] == ["Last request", "Open tasks"]
    assert "Recent messages" not in found
    assert rendered.truncated
    assert rendered.tokens <= 300


def test_dropped_lines_are_announced_when_the_note_fits() -> None:
    digest = fold([(ContextType.MESSAGE, "Decision: " + "a very long rationale " * 40, {})])
    rendered = render_brief(digest, context(), 150)
    assert "Decisions" not in headings(rendered.text)
    assert rendered.truncated
    # The decision and the recent-message copy of the same entry were both left out.
    assert rendered.text.endswith("\n\n_2 more lines left out to fit 150 tokens; fetch the full history._")
    assert rendered.tokens <= 150


def test_brief_never_exceeds_the_budget_across_many_budgets_and_digests() -> None:
    rng = random.Random(1234)
    for case in range(40):
        digest = random_digest(rng)
        ctx = context(random_request_data(rng), handoff_type=rng.choice(list(HandoffType)), up_to_sequence=case)
        edges = [MIN_TOKEN_BUDGET, MIN_TOKEN_BUDGET + 1, 5000][case % 3]
        for budget in [edges, *(rng.randint(MIN_TOKEN_BUDGET, 5000) for _ in range(8))]:
            rendered = render_brief(digest, ctx, budget)
            assert estimate_tokens(rendered.text) <= budget, (case, budget)
            assert rendered.tokens == estimate_tokens(rendered.text), (case, budget)
            found = headings(rendered.text)
            assert found == sorted(found, key=SECTIONS.index), (case, budget, found)


def test_a_larger_budget_never_yields_a_shorter_brief() -> None:
    rng = random.Random(99)
    for _ in range(10):
        digest = random_digest(rng)
        ctx = context(random_request_data(rng))
        lengths = [len(render_brief(digest, ctx, budget).text) for budget in range(64, 3000, 293)]
        # Not strictly monotonic (the truncation note comes and goes), but the trend must hold.
        assert lengths[-1] >= lengths[0]


def test_headings_are_never_left_without_content() -> None:
    rng = random.Random(7)
    for case in range(25):
        digest = random_digest(rng)
        ctx = context(random_request_data(rng))
        for budget in range(64, 1500, 71):
            lines = render_brief(digest, ctx, budget).text.split("\n")
            for i, line in enumerate(lines):
                if line.startswith("## "):
                    following = lines[i + 1] if i + 1 < len(lines) else ""
                    assert following.strip() and not following.startswith(("## ", "_")), (case, budget, line)


def test_minimum_budget_still_renders_the_header() -> None:
    rendered = render_brief(full_digest(), context({"note": "x" * 500}), MIN_TOKEN_BUDGET)
    assert rendered.text.startswith("# Handoff brief")
    assert rendered.tokens <= MIN_TOKEN_BUDGET


def test_rendering_is_deterministic() -> None:
    rng = random.Random(5)
    for _ in range(10):
        digest = random_digest(rng)
        ctx = context(random_request_data(rng))
        first = render_brief(digest, ctx, 800)
        again = render_brief(Digest.from_json(digest.to_json()), ctx, 800)
        assert first == again


def test_token_estimate_counts_non_ascii_characters_one_each() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abc") == 1
    assert estimate_tokens("abcd") == 2
    assert estimate_tokens("数据库") == 3
    assert estimate_tokens("🙂🙂") == 2
    assert estimate_tokens("ab数") == 2
    # Never below a realistic tokenizer's count: at most 3 ASCII characters per token.
    for text in ["hello world", "naïve café", "数据库连接失败\uff0c请重试", "x" * 1000]:
        ascii_chars = sum(c.isascii() for c in text)
        assert estimate_tokens(text) >= ascii_chars / 3 + (len(text) - ascii_chars)


def test_cjk_brief_respects_the_budget_counting_each_character() -> None:
    digest = fold(
        [(ContextType.MESSAGE, "决定\uff1a使用数据库", {"role": "user"})]
        + [(ContextType.MESSAGE, "Decision: " + "使用预写日志模式" * 30, {}) for _ in range(12)]
    )
    for budget in (64, 100, 250, 700, 2000):
        rendered = render_brief(digest, context({"说明": "请继续完成数据库迁移" * 20}), budget)
        non_ascii = sum(not c.isascii() for c in rendered.text)
        assert non_ascii <= budget
        assert rendered.tokens <= budget
    assert "使用预写日志模式" in render_brief(digest, context(), 2000).text


def test_summary_names_counts_and_last_request() -> None:
    rendered = render_brief(full_digest(), context(), 2000)
    assert rendered.summary.startswith("Session proj-42: 6 entries by claude.")
    assert 'Last request: "Now also support gzip input".' in rendered.summary
    assert "1 decisions, 1 open tasks, 1 failing tests, 1 files touched." in rendered.summary
