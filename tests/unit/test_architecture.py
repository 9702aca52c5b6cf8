"""The layering rules, checked by reading every module's imports (no module is executed)."""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import handoff

PACKAGE_DIR = Path(handoff.__file__).parent
STDLIB = sys.stdlib_module_names | {"__future__"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. handoff.services.context
    target: str  # the imported module, e.g. handoff.domain.models
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        anchor = module.split(".")
        drop = node.level - 1 if is_package else node.level
        anchor = anchor[: len(anchor) - drop]
        base = ".".join([*anchor, node.module] if node.module else anchor)
    # `from handoff.storage import migrate` imports the submodule handoff.storage.migrate.
    return [f"{base}.{alias.name}" if base.startswith("handoff") else base for alias in node.names]


def imports_of(path: Path) -> list[Import]:
    module = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []
    for node in ast.walk(tree):  # includes imports inside functions and TYPE_CHECKING blocks
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            targets = resolve(module, path.name == "__init__.py", node)
            found += [Import(module, target, node.lineno) for target in targets]
    return found


ALL_IMPORTS = [imp for path in sorted(PACKAGE_DIR.rglob("*.py")) for imp in imports_of(path)]


def within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def top(name: str) -> str:
    return name.split(".")[0]


def violations(layer: str, allowed: Callable[[Import], bool]) -> list[str]:
    return [str(imp) for imp in ALL_IMPORTS if within(imp.module, layer) and not allowed(imp)]


def test_the_walk_sees_the_whole_package() -> None:
    modules = {imp.module for imp in ALL_IMPORTS}
    for expected in (
        "handoff.domain.lifecycle",
        "handoff.services.context",
        "handoff.storage.repositories",
        "handoff.mcp.tools",
        "handoff.container",
        "handoff.cli",
    ):
        assert expected in modules


def test_relative_imports_are_resolved() -> None:
    node = ast.parse("from ..domain import models\nfrom . import ports").body
    assert isinstance(node[0], ast.ImportFrom) and isinstance(node[1], ast.ImportFrom)
    assert resolve("handoff.services.context", False, node[0]) == ["handoff.domain.models"]
    assert resolve("handoff.services", True, node[1]) == ["handoff.services.ports"]


def test_domain_imports_only_the_standard_library_and_errors() -> None:
    def allowed(imp: Import) -> bool:
        return top(imp.target) in STDLIB or within(imp.target, "handoff.domain", "handoff.errors")

    assert violations("handoff.domain", allowed) == []


def test_services_import_only_domain_config_errors_and_ports() -> None:
    def allowed(imp: Import) -> bool:
        if top(imp.target) in STDLIB:
            return True
        if top(imp.target) == "anyio":  # timeouts and pauses (health probes, paced jobs): no I/O of its own
            return True
        return within(imp.target, "handoff.domain", "handoff.errors", "handoff.config", "handoff.services")

    assert violations("handoff.services", allowed) == []


@pytest.mark.parametrize("entry_point", ["handoff.mcp", "handoff.http", "handoff.cli", "handoff.search_command"])
def test_entry_points_never_import_storage(entry_point: str) -> None:
    # Only the composition root (handoff.container) builds and touches adapters.
    assert violations(entry_point, lambda imp: not within(imp.target, "handoff.storage")) == []


def test_storage_never_imports_services_or_entry_points() -> None:
    def allowed(imp: Import) -> bool:
        if within(imp.target, "handoff.services.ports"):
            return True
        return not within(imp.target, "handoff.services", "handoff.mcp", "handoff.http", "handoff.cli")

    assert violations("handoff.storage", allowed) == []


def test_nothing_below_the_composition_root_imports_it() -> None:
    lower = ("handoff.domain", "handoff.services", "handoff.storage")
    bad = [str(i) for i in ALL_IMPORTS if within(i.module, *lower) and within(i.target, "handoff.container")]
    assert bad == []


def test_log_readers_are_adapters_that_know_nothing_of_services_or_storage() -> None:
    def allowed(imp: Import) -> bool:
        return top(imp.target) in STDLIB or within(imp.target, "handoff.capture", "handoff.errors")

    assert violations("handoff.capture", allowed) == []


@pytest.mark.parametrize("entry_point", ["handoff.importer", "handoff.entry"])
def test_capture_commands_call_services_not_storage(entry_point: str) -> None:
    assert violations(entry_point, lambda imp: not within(imp.target, "handoff.storage")) == []


def test_the_hook_fast_path_imports_only_the_standard_library() -> None:
    # `handoff hook` runs on every prompt and tool call: the CLI loads only when it is needed.
    def allowed(imp: Import) -> bool:
        return top(imp.target) in STDLIB or imp.target in ("handoff.cli.main", "handoff.__version__")

    assert violations("handoff.entry", allowed) == []


def test_redaction_depends_on_nothing_of_ours() -> None:
    def allowed(imp: Import) -> bool:
        return top(imp.target) in STDLIB or top(imp.target) == "detect_secrets"

    assert violations("handoff.redaction", allowed) == []
