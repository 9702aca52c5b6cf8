"""The brief's recall on real agent logs and hand-written scenarios must not fall below the
committed baseline (bench/handoff_quality/baseline.json), and must beat the transcript's tail."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "handoff_quality"
sys.path.insert(0, str(BENCH))

from evaluate import BASELINE, measure  # noqa: E402


@pytest.fixture(scope="module")
def measured() -> dict[str, Any]:
    return measure()


def test_every_real_case_reads_and_has_enough_facts() -> None:
    from evaluate import load_cases

    cases = load_cases()
    assert len(cases) >= 8
    assert len({c.agent for c in cases}) >= 3
    for case in cases:
        assert len(case.facts) >= 8, case.name
        assert len(case.entries) > 10, case.name
        assert (BENCH / "cases" / case.name / "PROVENANCE.md").is_file(), case.name


@pytest.mark.parametrize("group", ["real", "scenarios"])
def test_recall_does_not_drop_below_the_committed_baseline(measured: dict[str, Any], group: str) -> None:
    baseline = json.loads(BASELINE.read_text())[group]
    for key, floor in baseline.items():
        assert measured[group][key]["brief"] >= floor["brief"] - 1e-9, (group, key, measured[group][key], floor)


def test_the_brief_beats_the_tail_at_every_budget(measured: dict[str, Any]) -> None:
    for key, row in {**measured["real"], **measured["scenarios"]}.items():
        assert row["brief"] > row["tail"], (key, row)


def test_scenarios_reach_the_goal(measured: dict[str, Any]) -> None:
    for key, row in measured["scenarios"].items():
        assert row["brief"] >= 0.9, (key, row)
