"""Which sentences of real prose are worth a line: findings and decisions yes, narration and code no."""

from __future__ import annotations

from handoff.domain.prose import score_sentence, sentences


def kept(text: str, role: str = "assistant") -> bool:
    return score_sentence(text, role) is not None


def test_narration_about_what_the_agent_will_look_at_next_is_not_kept() -> None:
    for line in (
        "Now let's paste in the example code from the issue into the `reproduce_bug.py` file.",
        "Let's use the `find_file` command to locate the `numpy_handler.py` file within the repository.",
        "I will correct the syntax and try the edit command again.",
        "Here is the *SEARCH/REPLACE* block to create the new file `src/app.ts`:",
        "Ah, I see!",
    ):
        assert not kept(line), line


def test_a_decision_that_names_its_tool_is_kept() -> None:
    found = score_sentence("I'll use `np.where` in `reindl()` so a zero GHI gives 0 instead of NaN.", "assistant")
    assert found is not None and found.category == "decision"


def test_a_short_code_block_after_a_colon_finishes_the_sentence() -> None:
    units = sentences("The fix is:\n\n```python\nterm3 = np.where(ghi == 0, 1, 1 + np.sqrt(HB / ghi))\n```\nDone.")
    assert units[0] == "The fix is: `term3 = np.where(ghi == 0, 1, 1 + np.sqrt(HB / ghi))`"
    assert kept(units[0])


def test_a_long_code_block_is_left_out_of_the_prose() -> None:
    units = sentences("Here it goes.\n```python\n" + "x = 1\n" * 30 + "```\nThe tests pass now.")
    assert units == ["Here it goes.", "The tests pass now."]


def test_commands_and_assignments_that_slipped_out_of_code_are_not_sentences() -> None:
    for line in (
        'echo "Error: GITHUB_TOKEN environment variable is not set."',
        '-d "$QUERY6" https://api.github.com/graphql)',
        "GITHUB_TOKEN=your_token OWNER=owner_name ./metrics_check.sh",
    ):
        assert not kept(line), line


def test_cue_words_inside_inline_code_do_not_make_a_rejection() -> None:
    found = score_sentence(
        'Implementation: `if opts.AgentID != "" { read the agent file instead of main }`', "assistant"
    )
    assert found is None or found.category != "rejected"


def test_chinese_and_japanese_prose_is_split_and_categorised() -> None:
    units = sentences("原因は users.ts ではなく、DB 未接続です。不要修改测试文件。我决定改用方案B。")
    assert len(units) == 3
    finding, constraint, decision = (score_sentence(u, "user") for u in units)
    assert finding is not None and finding.category == "finding"
    assert constraint is not None and constraint.category == "constraint"
    assert decision is not None and decision.category == "decision"


def test_chinese_narration_is_not_kept_as_a_finding() -> None:
    assert not kept("现在让我提出几种实现方案。")


def test_a_harness_rule_about_exact_commands_is_a_constraint() -> None:
    found = score_sentence("Your response must contain exactly ONE bash code block with ONE command.", "instructions")
    assert found is not None and found.category == "constraint"
