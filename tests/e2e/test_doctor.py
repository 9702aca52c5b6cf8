"""`handoff doctor`: the readiness checks on the command line (for stdio deployments)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.e2e.servers import HANDOFF, server_env


def _doctor(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HANDOFF, "doctor", "--json"],
        capture_output=True,
        text=True,
        env=server_env(database_url),
        timeout=60,
        check=False,
    )


def test_doctor_reports_an_unmigrated_database_then_a_ready_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'doc.db'}"
    before = _doctor(url)
    assert before.returncode == 1
    report = json.loads(before.stdout)
    database = report["checks"][0]
    assert report["ready"] is False and database["name"] == "database" and "handoff migrate" in database["error"]
    subprocess.run([HANDOFF, "migrate"], env=server_env(url), check=True, capture_output=True, timeout=60)
    after = _doctor(url)
    assert after.returncode == 0, after.stdout
    assert json.loads(after.stdout)["ready"] is True


def test_doctor_names_an_unreachable_database_quickly() -> None:
    result = _doctor("postgresql://postgres@127.0.0.1:1/none")  # nothing listens on port 1
    assert result.returncode == 1
    database = json.loads(result.stdout)["checks"][0]
    assert database["ok"] is False and database["backend"] == "postgresql" and database["error"]
    assert database["latency_ms"] < 1500  # probes are bounded by their 1 s timeout
