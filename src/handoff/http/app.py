"""The Starlette app served by `handoff serve --transport http`."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from handoff.container import Container
from handoff.http.admission import MCP_PATH, RequesterContext, SessionAdmission
from handoff.http.auth import BearerAuth, is_loopback
from handoff.http.oauth import OAuthConfig, access_tokens, add_metadata_routes, challenge_for
from handoff.http.resume import ResumeAnywhere
from handoff.http.streams import UnboundEventStore, own_event_store
from handoff.observability.metrics import metrics_endpoint

LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


def build_http_app(server: MCPServer, container: Container) -> ASGIApp:
    settings = container.settings
    extra = settings.http.allowed_hosts
    security = TransportSecuritySettings(
        # Browsers on other sites must not reach a loopback server through DNS rebinding.
        enable_dns_rebinding_protection=True,
        allowed_hosts=LOOPBACK_HOSTS + extra,
        allowed_origins=LOOPBACK_ORIGINS + [f"http://{h}" for h in extra] + [f"https://{h}" for h in extra],
    )
    # The SDK checks Host and Origin on /mcp only. On a loopback bind the other endpoints get the same
    # check (a rebinding page could read /metrics otherwise). On any other bind they stay open to
    # every Host: orchestrators probe and scrape a replica by its address (Kubernetes sends the pod
    # IP as Host), and such a bind already requires tokens on /mcp.
    guard = TransportSecurityMiddleware(security) if is_loopback(settings.http.host) else None

    async def refused(request: Request) -> Response | None:
        return await guard.validate_request(request) if guard is not None else None

    @server.custom_route("/healthz", methods=["GET"])  # type: ignore[untyped-decorator]
    async def healthz(request: Request) -> Response:
        return await refused(request) or JSONResponse({"status": "ok"})

    @server.custom_route("/readyz", methods=["GET"])  # type: ignore[untyped-decorator]
    async def readyz(request: Request) -> Response:
        if denied := await refused(request):
            return denied
        report = await container.health.check_ready()
        container.metrics.observe_readiness(report)
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    @server.custom_route("/metrics", methods=["GET"])  # type: ignore[untyped-decorator]
    async def metrics(request: Request) -> Response:
        return await refused(request) or await metrics_endpoint(request, container.metrics)

    oauth = OAuthConfig.of(settings.auth.oauth) if settings.auth.mode == "oauth" else None
    if oauth is not None:
        add_metadata_routes(server, oauth)  # before the app is built: it takes the custom routes then

    # Content is limited in bytes after decoding; JSON escaping can inflate it up to 6x on the wire.
    body_limit = settings.limits.max_content_bytes * 6 + settings.limits.max_metadata_bytes * 6 + 1024 * 1024
    resumable = settings.streams.resumable
    app: Starlette = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=security,
        max_request_body_size=body_limit,
        host=settings.http.host,
        # Each session gets its own store bound below; the retry hint rides on the priming event,
        # which the SDK sends only when there is a store (and the client speaks 2025-11-25 or later).
        event_store=UnboundEventStore() if resumable else None,
        retry_interval=settings.streams.retry_ms if resumable else None,
        session_idle_timeout=settings.http.session_idle_seconds,
        max_sessions=settings.http.max_sessions,
    )
    admission = SessionAdmission(
        server.session_manager,
        per_principal=settings.http.max_sessions_per_principal,
        unused_seconds=settings.http.unused_session_seconds,
        idle_seconds=settings.http.session_idle_seconds,
        bind=own_event_store(container.streams) if resumable else None,
    )
    served: ASGIApp = ResumeAnywhere(app, container.streams, security) if resumable else app
    served = RequesterContext(served, admission)
    if settings.auth.mode == "tokens":
        return BearerAuth(served, container.tokens.authenticate)
    if oauth is not None:
        tokens = access_tokens(oauth, max_agent_length=settings.limits.max_key_length)
        return BearerAuth(served, tokens.authenticate, challenge_for(oauth))
    return served
