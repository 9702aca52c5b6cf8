"""The analysis adapter stays an adapter: it never imports services, entry points or storage."""

from __future__ import annotations

from tests.unit.test_architecture import ALL_IMPORTS, within


def test_analysis_adapter_imports_no_services_entry_points_or_storage() -> None:
    forbidden = (
        "handoff.services",
        "handoff.mcp",
        "handoff.http",
        "handoff.cli",
        "handoff.storage",
        "handoff.container",
    )
    bad = [str(i) for i in ALL_IMPORTS if within(i.module, "handoff.analysis") and within(i.target, *forbidden)]
    assert bad == []
    assert any(within(i.module, "handoff.analysis") for i in ALL_IMPORTS)
