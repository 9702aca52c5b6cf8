"""build_server(): the MCPServer with our tools, resources, prompts, logging and error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.mcpserver import Context, MCPServer, ResourceSecurity
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

import handoff
from handoff.errors import InvalidInput, NotFound
from handoff.logs import get_logger
from handoff.mcp.analysis_tool import register_analysis_tool
from handoff.mcp.completions import register_completions
from handoff.mcp.errors import invalid_arguments, refusal, rpc_error
from handoff.mcp.pipeline import RequestPipeline
from handoff.mcp.prompts import register_prompts
from handoff.mcp.readiness import ContainerGate
from handoff.mcp.resources import register_resources
from handoff.mcp.search_tool import register_search_tool
from handoff.mcp.subscriptions import SeenConnections, SubscriptionRegistry
from handoff.mcp.tools import register_tools

if TYPE_CHECKING:  # only the type: importing the container would load the storage layer
    from handoff.container import Container

log = get_logger("handoff.requests")

INSTRUCTIONS = """\
handoff keeps the working context of AI agents and hands it from one agent to another.
As the agent doing the work: register_session once, then update_context as you go, with text as
it is written: the user's requests verbatim (metadata.role=user), your reasoning and decisions,
each command with its output as printed (tests are read for results), files you change
(metadata.path, metadata.action). When you stop or someone else should continue: use the
prepare_handoff prompt, then request_handoff with your note.
As the receiving agent: find what was handed to you with list_handoffs(target_agent=<you>,
status="pending") (or the resource handoff://agents/<you>/inbox), accept_handoff it (or
decline_handoff with a reason), read the brief in the handoff (or the resume_handoff prompt), then
page through get_context for the full history; complete_handoff when the work is done.
"""


class HandoffServer(MCPServer):
    """The SDK's server, with its argument checks answered in our error format.

    The SDK validates arguments before our tool function runs and would answer with pydantic's
    text (`1 validation error for get_sessionArguments … errors.pydantic.dev`); a model reads our
    `{"error": {"code": "invalid_input", …}}` with the field named instead.
    """

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> types.CallToolResult | types.InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as error:
            if isinstance(error.__cause__, ValidationError):
                return refusal(invalid_arguments(error.__cause__, f"tool {name}"))
            if self._tool_manager.get_tool(name) is None:
                unknown = NotFound(f"no tool named {name!r}; tools/list names them", {"tool": name})
                return refusal(unknown, outcome="unknown_tool")  # metrics label it `unknown`, not by name
            raise

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> types.GetPromptResult | types.InputRequiredResult:
        prompt = self._prompt_manager.get_prompt(name)
        if prompt is None:
            raise rpc_error(NotFound(f"no prompt named {name!r}; prompts/list names them", {"prompt": name}))
        given = arguments or {}
        missing = [a.name for a in prompt.arguments or [] if a.required and a.name not in given]
        if missing:
            problems = [{"field": field, "problem": "is required"} for field in missing]
            message = f"invalid arguments for prompt {name}: " + "; ".join(f"{m} is required" for m in missing)
            raise rpc_error(InvalidInput(message, {"field": missing[0], "problems": problems}))
        try:
            return await super().get_prompt(name, arguments, context)
        except ValueError as error:
            if isinstance(error.__cause__, ValidationError):
                raise rpc_error(invalid_arguments(error.__cause__, f"prompt {name}")) from None
            raise


def build_server(container: Container | ContainerGate) -> MCPServer:
    """The server; built on a `ContainerGate` it answers listings before the storage layer is up."""
    notify = container.settings.notify
    registry = (
        None
        if notify.backend == "off"
        else SubscriptionRegistry(
            container, max_per_connection=notify.max_subscriptions_per_connection, max_streams=notify.max_listen_streams
        )
    )

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[dict[str, Any]]:
        if registry is None:
            yield {}
            return
        async with registry.hosting():  # the tasks that send each connection its notices
            yield {}

    server: MCPServer = HandoffServer(
        name="handoff",
        title="handoff",
        version=handoff.__version__,
        instructions=INSTRUCTIONS,
        # The SDK's default policy treats template values as file paths, so a session key like
        # `build:42` read as a Windows drive and the URI was refused. Ours are keys and ids that the
        # services validate (no paths anywhere); only the NUL check stays.
        resource_security=ResourceSecurity(reject_path_traversal=False, reject_absolute_paths=False),
        log_level=container.settings.log.level,
        lifespan=lifespan,
        # 2026-07-28 listen streams are served by the registry's own handler (registered below).
        subscriptions=False if registry is None else registry.bus,
        # The SDK's OpenTelemetryMiddleware comes first (its span per request); then our one pipeline.
        middleware=[
            RequestPipeline(
                container.settings,
                container.metrics,
                gate=container if isinstance(container, ContainerGate) else None,
            ),
            *([] if registry is None else [SeenConnections(registry)]),
        ],
    )
    # A gate forwards every attribute to the container once it is open, and requests wait for that.
    services = cast("Container", container)
    register_tools(server, services)
    register_analysis_tool(server, services)
    register_search_tool(server, services)
    register_resources(server, services)
    register_prompts(server, services)
    register_completions(server, container)
    # 2025-era clients send logging/setLevel; the SDK leaves it unanswered unless we handle it.
    server._lowlevel_server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, _set_level)
    if registry is not None:
        register_subscriptions(server._lowlevel_server, registry)
    server.subscriptions = registry  # type: ignore[attr-defined]  # for tests and the benchmark
    return server


def register_subscriptions(lowlevel: Server[Any], registry: SubscriptionRegistry) -> None:
    """resources/subscribe and unsubscribe (2025 era), subscriptions/listen (2026-07-28), and the
    capabilities that say so: `subscribe` and `listChanged` are advertised only when notices are on
    (HANDOFF_NOTIFY__BACKEND is not `off`), since only then does anything ever send them."""
    lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, registry.subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, registry.unsubscribe)
    lowlevel.add_request_handler("subscriptions/listen", types.SubscriptionsListenRequestParams, registry.listen)
    # The SDK reads `listChanged` for handshake-era clients from the options given here, and every
    # transport (stdio, each HTTP session) asks for them without any: fill ours in.
    lowlevel.create_initialization_options = partial(  # type: ignore[method-assign]
        type(lowlevel).create_initialization_options, lowlevel, NotificationOptions(resources_changed=True)
    )
    default_discover = lowlevel._handle_discover

    async def discover(ctx: ServerRequestContext[Any, Any], params: types.RequestParams) -> types.DiscoverResult:
        # For 2026-07-28 the SDK derives every listChanged flag from listen being served; our tools
        # and prompts never change, so only the resource flags are true.
        found = await default_discover(ctx, params)
        capabilities = found.capabilities
        if capabilities.tools is not None:
            capabilities.tools.list_changed = False
        if capabilities.prompts is not None:
            capabilities.prompts.list_changed = False
        return found

    lowlevel.add_request_handler("server/discover", types.RequestParams, discover)


async def _set_level(ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams) -> types.EmptyResult:
    """Acknowledged, and nothing else: the level a client asks for is about the log messages sent to
    that client, and this server sends none. The server's own log belongs to its operator (a client
    that could set it to `emergency` could hide what it does next)."""
    return types.EmptyResult()
