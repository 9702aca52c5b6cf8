"""Checks across docs/operators.md and docs/agents.md: every block marked, every example run, real settings.

The examples themselves run in test_operators_guide.py and test_agents_guide.py; how the guides mark
their blocks and how examples run is described in guide_harness.py.
"""

from __future__ import annotations

import json
import re

# Imported for their @runs registrations: the registry check below must see every runner of both guides.
from tests.docs import test_agents_guide, test_operators_guide  # noqa: F401
from tests.docs.guide_harness import (
    BLOCKS,
    EXAMPLE_LANGUAGES,
    EXAMPLES,
    GUIDES,
    OPERATORS_GUIDE,
    OUTPUT_LANGUAGES,
    RUNNERS,
    setting_field,
)

EXAMPLE_PLACEHOLDER_VARIABLES = {"HANDOFF_URL"}  # read by the examples, not by handoff


def test_every_fenced_block_is_marked() -> None:
    problems = []
    for block in BLOCKS:
        if block.kind is None:
            problems.append(f"{block.where}: no <!-- example: NAME -->, <!-- output: NAME --> or <!-- not-run: … -->")
        elif block.kind == "example" and block.info not in EXAMPLE_LANGUAGES:
            problems.append(f"{block.where}: example {block.label!r} is {block.info!r}, not one of {EXAMPLE_LANGUAGES}")
        elif block.kind == "output" and block.info not in OUTPUT_LANGUAGES:
            problems.append(
                f"{block.where}: output of {block.label!r} is {block.info!r}, not one of {OUTPUT_LANGUAGES}"
            )
        elif block.kind == "output" and block.label not in EXAMPLES:
            problems.append(f"{block.where}: output of {block.label!r}, which is no example")
        elif block.kind == "not-run" and not block.label:
            problems.append(f"{block.where}: not-run needs a reason")
    names = [b.label for b in BLOCKS if b.kind == "example"]
    problems += [f"example name {name!r} is used twice" for name in sorted({n for n in names if names.count(n) > 1})]
    assert not problems, "\n".join(problems)


def test_every_example_has_a_runner_and_every_runner_an_example() -> None:
    assert EXAMPLES, "no examples found in the guides"
    assert sorted(set(EXAMPLES) - set(RUNNERS)) == [], "examples nobody runs"
    assert sorted(set(RUNNERS) - set(EXAMPLES)) == [], "runners for examples the guides no longer have"


def test_the_guides_name_only_real_settings() -> None:
    for guide in GUIDES:
        for variable in sorted(set(re.findall(r"\bHANDOFF_[A-Z0-9_]*[A-Z0-9]", guide.read_text()))):
            if variable not in EXAMPLE_PLACEHOLDER_VARIABLES:
                setting_field(variable)


def test_defaults_in_the_operators_tables_are_the_real_ones() -> None:
    checked = 0
    for line in OPERATORS_GUIDE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.fullmatch(r"`HANDOFF_[A-Z0-9_]+`", cells[0]):
            continue
        variable, default = cells[0].strip("`"), cells[1]
        actual = setting_field(variable).get_default(call_default_factory=True)
        if default == "unset":
            assert actual is None, f"{variable}: the guide says unset, the default is {actual!r}"
        else:
            assert re.fullmatch(r"`[^`]+`", default), f"{variable}: write the default as a code span: {default!r}"
            assert json.loads(default.strip("`")) == actual, f"{variable}: guide {default}, config.py {actual!r}"
        checked += 1
    assert checked >= 30, f"only {checked} settings rows found in {OPERATORS_GUIDE.name}"
