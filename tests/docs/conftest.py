"""The server as a client sees it, listed once for the documentation tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp.client import Client

from handoff.config import Settings
from handoff.container import Container
from handoff.mcp.server import build_server


@dataclass(frozen=True)
class Listing:
    tools: list[types.Tool]
    prompts: list[types.Prompt]
    resources: list[types.Resource]
    templates: list[types.ResourceTemplate]


async def _list(database: Path) -> Listing:
    settings = Settings(database_url=f"sqlite:///{database}")  # type: ignore[arg-type]
    with anyio.fail_after(30):
        async with Container.build(settings) as container, Client(build_server(container)) as client:
            return Listing(
                tools=(await client.list_tools()).tools,
                prompts=(await client.list_prompts()).prompts,
                resources=(await client.list_resources()).resources,
                templates=(await client.list_resource_templates()).resource_templates,
            )


@pytest.fixture(scope="package")
def listing(tmp_path_factory: pytest.TempPathFactory) -> Listing:
    """Tools, prompts, resources and resource templates of a server built the way `serve` builds it."""
    return anyio.run(_list, tmp_path_factory.mktemp("docs") / "handoff.db")
