"""docs/alerts.yml: well-formed rules that only reference metrics the server exports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp.client import Client
from mcp.shared.exceptions import MCPError

from handoff.container import Container
from handoff.observability.metrics import Metrics
from tests.conftest import structured
from tests.observability.conftest import scrape

pytestmark = pytest.mark.anyio

ALERTS = Path(__file__).resolve().parents[2] / "docs" / "alerts.yml"
PROMETHEUS_OWN = {"up"}  # series Prometheus records itself for every target
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS |= {"inf", "nan", "Inf", "NaN"}
CRITICAL = {
    "error rate": "handoff_tool_errors_total",
    "p99 latency": "handoff_tool_duration_seconds_bucket",
    "readiness": "handoff_ready",
    "breaker open": "handoff_circuit_breaker_state",
    "job failures": "handoff_job_runs_total",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels, durations removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if re.match(r"\s*\(", text[match.end() :]):
            continue  # a function call
        if match.group() not in KEYWORDS:
            names.add(match.group())
    return names


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    found = [rule for group in document["groups"] for rule in group["rules"]]
    assert found, "no rules in docs/alerts.yml"
    return found


def test_the_name_extractor_sees_selectors_and_skips_the_rest() -> None:
    expr = (
        'sum by (le, tool) (rate(foo_bucket{tool!="x", a=~"b|c"}[5m])) / on(instance) bar offset 1h'
        " > 1e-3 and time() - max(baz:recorded) > 6 * 3600 unless histogram_quantile(0.99, qux)"
    )
    assert metric_names(expr) == {"foo_bucket", "bar", "baz:recorded", "qux"}


def test_every_rule_has_a_duration_severity_and_summary() -> None:
    for rule in rules():
        assert isinstance(rule.get("alert"), str) and rule["alert"], rule
        assert isinstance(rule.get("expr"), str) and rule["expr"].strip(), rule["alert"]
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{rule['alert']}: `for` missing or malformed"
        assert rule.get("labels", {}).get("severity") in {"page", "ticket"}, rule["alert"]
        assert rule.get("annotations", {}).get("summary"), rule["alert"]
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)), "duplicate alert names"


def test_the_critical_conditions_are_covered() -> None:
    referenced = set().union(*(metric_names(rule["expr"]) for rule in rules()))
    missing = {what: name for what, name in CRITICAL.items() if name not in referenced}
    assert missing == {}


async def test_rules_reference_only_metrics_the_server_exports(
    client: Client, metrics: Metrics, observed: Container
) -> None:
    # Make every family produce samples: calls of each kind, a job run, a scrape of every source.
    structured(await client.call_tool("register_session", {"session_key": "s1", "source_agent": "a"}))
    await client.call_tool("get_session", {"session_key": "ghost"})
    await client.read_resource("handoff://sessions/s1")
    with pytest.raises(MCPError):
        await client.read_resource("handoff://sessions/ghost")
    metrics.record_job_run("expire_sessions", 1, 1, 0, 0.1, True)
    exported = await scrape(metrics)
    names = set(exported.families)
    names |= {sample.name for family in exported.families.values() for sample in family.samples}

    for rule in rules():
        unknown = metric_names(rule["expr"]) - names - PROMETHEUS_OWN
        assert unknown == set(), f"{rule['alert']} references metrics /metrics does not export: {sorted(unknown)}"
