"""`handoff serve|migrate|sessions`: the command line. Calls services, never SQL."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import anyio.abc

import handoff
from handoff.clientconfig import add_commands as add_config_commands
from handoff.config import Settings
from handoff.credentials import add_commands as add_token_commands
from handoff.domain.models import SessionStatus
from handoff.domain.retention import RETENTION_NAMES
from handoff.errors import CannotStart, HandoffError
from handoff.importer import add_commands as add_capture_commands
from handoff.logs import configure_logging, get_logger
from handoff.observability.tracing import Tracing, configure_tracing, parse_headers
from handoff.search_command import add_commands as add_search_commands
from handoff.services.lifecycle import JOBS

if TYPE_CHECKING:  # loaded by each command when it runs: `handoff stdio` answers before the storage layer loads
    from handoff.container import Container
    from handoff.mcp.readiness import ContainerGate

log = get_logger("handoff.cli")


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = _load_settings()
    configure_logging(_log_level(settings, args.command))
    try:
        args.run(settings, args)
    except CannotStart as error:
        print(f"handoff: {error.message}", file=sys.stderr)
        sys.exit(1)
    except HandoffError as error:
        print(f"error ({error.code}): {error.message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def _load_settings() -> Settings:
    """The settings from the environment, or one line naming the variable that is wrong."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        variable = "HANDOFF_" + "__".join(str(part) for part in first["loc"]).upper()
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        print(f"handoff: setting {variable} is invalid: {first['msg']}{more}", file=sys.stderr)
        sys.exit(2)


def _log_level(settings: Settings, command: str) -> str:
    """Servers log at the configured level; one-shot commands print tables, so only warnings unless asked."""
    if command in {"serve", "stdio"} or settings.log_level is not None or "level" in settings.log.model_fields_set:
        return settings.log.level
    return "WARNING"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="handoff", description="MCP server for AI-agent handoff.")
    parser.add_argument("--version", action="version", version=f"handoff {handoff.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="Run the MCP server (streamable HTTP by default).",
        description="Run the MCP server. Over HTTP it prints its URL and a client config; over stdio "
        "the client starts it and stdout carries only protocol messages.",
    )
    serve.add_argument(
        "--transport",
        choices=["stdio", "http"],
        default=None,
        help="http (default, or HANDOFF_TRANSPORT) serves http://HOST:PORT/mcp; stdio is for clients "
        "that start the server themselves (same as `handoff stdio`).",
    )
    serve.add_argument("--host", default=None, help="HTTP bind address (default 127.0.0.1).")
    serve.add_argument("--port", type=int, default=None, help="HTTP port (default 8765; 0 picks a free one).")
    serve.set_defaults(run=_serve)

    stdio = commands.add_parser(
        "stdio",
        help="Run the MCP server over stdio (what a client config's command should start).",
        description="Run the MCP server over stdio: the same as `handoff serve --transport stdio`.",
    )
    stdio.set_defaults(run=_serve, transport="stdio", host=None, port=None)

    migrate = commands.add_parser("migrate", help="Create or upgrade the database schema.")
    migrate.add_argument("--check", action="store_true", help="Only report; exit 1 when not current.")
    migrate.set_defaults(run=_migrate)

    doctor = commands.add_parser("doctor", help="Check the database, schema and cache like /readyz does.")
    doctor.add_argument("--json", action="store_true", help="Print the readiness report as JSON.")
    doctor.set_defaults(run=_doctor)

    jobs = commands.add_parser("jobs", help="Lifecycle jobs: run one now, or show recent runs.")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    run = jobs_sub.add_parser("run", help="Run a job once (waits for no interval; skips if another replica runs it).")
    run.add_argument("name", choices=[*JOBS, "all"])
    run.set_defaults(run=_jobs_run)
    runs = jobs_sub.add_parser("runs", help="Recent job runs with their statistics.")
    runs.add_argument("--job")
    runs.add_argument("--limit", type=int, default=20)
    runs.set_defaults(run=_jobs_runs)

    add_capture_commands(commands)
    add_config_commands(commands)
    add_token_commands(commands)
    add_search_commands(commands)

    sessions = commands.add_parser("sessions", help="Inspect sessions.")
    sub = sessions.add_subparsers(dest="sessions_command", required=True)
    listing = sub.add_parser("list", help="List sessions.")
    listing.add_argument("--status", action="append", choices=[s.value for s in SessionStatus])
    listing.add_argument("--agent")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    listing.set_defaults(run=_sessions_list)
    show = sub.add_parser("show", help="Show one session and its latest entries.")
    show.add_argument("key")
    show.add_argument("--json", action="store_true", help="Print JSON instead of tables.")
    show.set_defaults(run=_sessions_show)
    retention = sub.add_parser(
        "retention", help="Change a session's retention policy as the operator (e.g. a legal hold)."
    )
    retention.add_argument("key")
    retention.add_argument("policy", choices=RETENTION_NAMES)
    retention.add_argument(
        "--actor", default="operator", help="Who changes it, recorded in the lifecycle events (default: operator)."
    )
    retention.set_defaults(run=_sessions_retention)
    return parser


# -- serve --------------------------------------------------------------------------------------


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    if args.host:
        settings.http.host = args.host
    if args.port is not None:
        settings.http.port = args.port
    listener: socket.socket | None = None
    if (args.transport or settings.transport) == "http":
        from handoff.http.auth import check_bind
        from handoff.http.serving import listen

        check_bind(settings.http.host, settings.auth)
        # Before anything else: a busy port is reported at once, not after the database is up.
        listener = listen(settings.http.host, settings.http.port, backlog=settings.http.backlog)
    tracing = _start_tracing(settings)
    try:
        if listener is None:
            anyio.run(_serve_stdio, settings)
        else:
            anyio.run(_serve_http, settings, listener)
    finally:
        if tracing is not None:
            tracing.shutdown()  # flushes buffered spans, bounded by the export timeout


def _start_tracing(settings: Settings) -> Tracing | None:
    """OTLP export when HANDOFF_TRACING__OTLP_ENDPOINT is set; otherwise nothing is installed."""
    t = settings.tracing
    return configure_tracing(
        otlp_endpoint=t.otlp_endpoint,
        service_name=t.service_name,
        sample_ratio=t.sample_ratio,
        headers=parse_headers(t.headers.get_secret_value() if t.headers else None),
        export_timeout_seconds=t.export_timeout_seconds,
    )


async def _serve_stdio(settings: Settings) -> None:
    """Serve stdio at once; the storage layer comes up beside it (see mcp/readiness.py)."""
    from handoff.mcp.readiness import ContainerGate
    from handoff.mcp.server import build_server
    from handoff.mcp.stdio import serve_stdio
    from handoff.observability.metrics import Metrics

    metrics = Metrics(
        scrape_timeout_seconds=settings.metrics.scrape_timeout_seconds,
        inventory_max_age_seconds=settings.metrics.inventory_max_age_seconds,
    )
    gate = ContainerGate(settings, metrics)
    server = build_server(gate)
    try:
        async with anyio.create_task_group() as serving:
            serving.start_soon(_stop_on_signals, serving.cancel_scope)
            serving.start_soon(_open_storage, settings, gate, serving)
            await serve_stdio(server)
            # stdin closed: the client is gone. A start-up still under way finishes first, so a
            # database that is down is still reported.
            await gate.settled()
            serving.cancel_scope.cancel()
    except* CannotStart as failed:
        raise failed.exceptions[0] from None
    finally:
        if gate.container is not None:
            with anyio.CancelScope(shield=True):
                await _drain_leftover_tasks()
                await gate.container.close()


async def _open_storage(settings: Settings, gate: ContainerGate, serving: anyio.abc.TaskGroup) -> None:
    """Build and start the container, open the gate, start the jobs in the serving task group."""
    # The import is most of the cost; in a thread, the loop keeps answering the client meanwhile.
    await anyio.to_thread.run_sync(importlib.import_module, "handoff.container")
    from handoff.container import Container

    container = Container.build(settings, metrics=gate.metrics)
    try:
        await container.start()
    except BaseException as error:
        with anyio.CancelScope(shield=True):
            await container.close()
        gate.fail(error.message if isinstance(error, CannotStart) else "start-up was interrupted")
        raise
    gate.open(container)
    serving.start_soon(container.changes.run)
    if settings.lifecycle.jobs_enabled:
        serving.start_soon(container.jobs.run_forever)
    log.info("serving", transport="stdio", database=container.engine.url.render_as_string(hide_password=True))


async def _stop_on_signals(scope: anyio.CancelScope) -> None:
    """SIGINT or SIGTERM: stop serving and shut down in order (over HTTP, uvicorn does this)."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("stopping", signal=signal.Signals(signum).name)
            scope.cancel()
            return


async def _serve_http(settings: Settings, listener: socket.socket) -> None:
    import uvicorn

    from handoff.container import Container
    from handoff.http.app import build_http_app
    from handoff.http.connections import ConnectionLimits, bounded_protocol, fit_descriptor_limit
    from handoff.http.serving import AnnouncingServer
    from handoff.mcp.server import build_server

    http = settings.http
    limits = ConnectionLimits(
        http.header_timeout_seconds, http.body_timeout_seconds, fit_descriptor_limit(http.max_connections)
    )
    with listener:
        async with Container.build(settings) as container, _background_jobs(container), container.streams.writer():
            mcp_server = build_server(container)
            app = build_http_app(mcp_server, container)
            config = uvicorn.Config(
                app,
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=10,
                lifespan="on",
                http=bounded_protocol(limits),
                timeout_keep_alive=http.keep_alive_seconds,
                h11_max_incomplete_event_size=http.max_header_bytes,
                backlog=http.backlog,
            )
            subscriptions = getattr(mcp_server, "subscriptions", None)
            server = AnnouncingServer(
                config, container, before_shutdown=None if subscriptions is None else subscriptions.close_streams
            )
            await server.serve(sockets=[listener])
            await _drain_leftover_tasks()
    if server.misdirected_stdio_client:
        raise CannotStart(
            "an MCP client is speaking stdio to this HTTP server: start it with `handoff stdio` "
            "(or `handoff serve --transport stdio`, or HANDOFF_TRANSPORT=stdio)."
        )


@asynccontextmanager
async def _background_jobs(container: Container) -> AsyncIterator[None]:
    """The lifecycle jobs and the change feed's receiver run in the server's own task group and stop with it."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(container.changes.run)
        if container.settings.lifecycle.jobs_enabled:
            tg.start_soon(container.jobs.run_forever)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


async def _drain_leftover_tasks(deadline_seconds: float = 5.0) -> None:
    """Cancel what the transport left running, and let it unwind while the database is still open.

    When a client disconnects mid-request the SDK answers "Connection closed" but the handler task
    can outlive the transport (HTTP requests were already drained by uvicorn's graceful shutdown).
    If the engine were disposed first, such a task would wait forever on a database thread that is
    gone, and the process would never exit. Cancelled transactions roll back; nothing half-written.
    """
    current = asyncio.current_task()
    leftover = {task for task in asyncio.all_tasks() if task is not current and not task.done()}
    for task in leftover:
        task.cancel()
    if leftover:
        _, stuck = await asyncio.wait(leftover, timeout=deadline_seconds)
        if stuck:
            log.warning("tasks still running at shutdown", count=len(stuck))


# -- migrate ------------------------------------------------------------------------------------


def _migrate(settings: Settings, args: argparse.Namespace) -> None:
    anyio.run(_run_migrate, settings, args.check)


async def _run_migrate(settings: Settings, check: bool) -> None:
    from handoff.container import Container

    settings.db.auto_migrate = False
    container = Container.build(settings)
    try:
        url = container.engine.url.render_as_string(hide_password=True)
        if check:
            current, head = await container.schema_revisions()
            print(f"database {url}: schema {current or 'empty'}, code expects {head}")
            if current != head:
                sys.exit(1)
            differences = await container.schema_drift()
            for difference in differences:
                print(f"  drift: {difference}")
            if differences:
                print("the schema differs from what this version declares (changed by hand?)")
                sys.exit(1)
            print("no drift")
            return
        before, after = await container.migrate()
        print(
            f"database {url}: schema {before or 'empty'} -> {after}"
            if before != after
            else f"database {url}: schema {after} is current"
        )
    finally:
        await container.close()


# -- sessions -----------------------------------------------------------------------------------


def _sessions_list(settings: Settings, args: argparse.Namespace) -> None:
    anyio.run(_run_sessions_list, settings, args)


async def _run_sessions_list(settings: Settings, args: argparse.Namespace) -> None:
    from handoff.container import Container
    from handoff.domain.models import SessionStatus
    from handoff.mcp.schemas import SessionOut
    from handoff.tables import Table

    async with Container.build(settings) as container:
        statuses = [SessionStatus(s) for s in args.status] if args.status else None
        page = await container.sessions.list_sessions(
            statuses=statuses, agent=args.agent, cursor=None, limit=args.limit
        )
    if args.json:
        print(json.dumps([SessionOut.of(s).model_dump(mode="json") for s in page.sessions], indent=2))
        return
    table = Table(title=f"sessions ({len(page.sessions)}{'+' if page.next_cursor else ''})")
    for column in ("key", "status", "owner", "entries", "last activity", "expires"):
        table.add_column(column)
    for s in page.sessions:
        table.add_row(
            s.session_key,
            s.status.value,
            s.owner_agent,
            str(s.entry_count),
            s.last_activity_at.strftime("%Y-%m-%d %H:%M:%S"),
            s.expires_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    print(table.render())


def _sessions_retention(settings: Settings, args: argparse.Namespace) -> None:
    anyio.run(_run_sessions_retention, settings, args)


async def _run_sessions_retention(settings: Settings, args: argparse.Namespace) -> None:
    from handoff.container import Container

    async with Container.build(settings) as container:
        session = await container.sessions.set_retention(args.key, args.policy, args.actor)
    print(f"session {session.session_key}: retention {session.retention_policy} (recorded as {args.actor})")


def _sessions_show(settings: Settings, args: argparse.Namespace) -> None:
    anyio.run(_run_sessions_show, settings, args)


async def _run_sessions_show(settings: Settings, args: argparse.Namespace) -> None:
    from handoff.container import Container
    from handoff.mcp.schemas import EntryOut, SessionOut
    from handoff.tables import Table

    async with Container.build(settings) as container:
        view = await container.sessions.get(args.key)
        session = view.session
        after = max(0, session.entry_count - 20)
        from handoff.services.paging import encode_cursor

        page = await container.context.page(
            args.key, cursor=encode_cursor("c", after) if after else None, limit=20, context_types=None
        )
    if args.json:
        body = {
            "session": SessionOut.of(session, view.counts_by_type).model_dump(mode="json"),
            "latest_entries": [EntryOut.of(e).model_dump(mode="json") for e in page.entries],
        }
        print(json.dumps(body, indent=2))
        return
    info = Table(title=f"session {session.session_key}", show_header=False)
    info.add_column("field")
    info.add_column("value")
    for field, value in (
        ("status", session.status.value),
        ("owner", session.owner_agent),
        ("source", session.source_agent),
        ("participants", ", ".join(f"{p.agent} ({p.role.value})" for p in session.participants or [])),
        ("entries", f"{session.entry_count} ({json.dumps(view.counts_by_type)})"),
        ("bytes", str(session.content_bytes)),
        ("created", session.created_at.isoformat()),
        ("last activity", session.last_activity_at.isoformat()),
        ("expires", session.expires_at.isoformat()),
        ("metadata", json.dumps(session.metadata, ensure_ascii=False)),
    ):
        info.add_row(field, value)
    print(info.render())
    entries = Table(title="latest entries")
    for column in ("#", "type", "agent", "content"):
        entries.add_column(column)
    for e in page.entries:
        entries.add_row(str(e.sequence_number), e.context_type.value, e.agent, e.content)
    print(entries.render())


# -- jobs ---------------------------------------------------------------------------------------


def _jobs_run(settings: Settings, args: argparse.Namespace) -> None:
    anyio.run(_run_jobs_run, settings, args.name)


async def _run_jobs_run(settings: Settings, name: str) -> None:
    from handoff.container import Container
    from handoff.services.lifecycle import JOBS

    async with Container.build(settings) as container:
        for job in JOBS if name == "all" else (name,):
            report = await container.jobs.run_once(job)
            if report is None:
                print(f"{job}: skipped (another replica is running it, or it failed; see the log)")
                continue
            print(
                f"{job}: examined {report.examined}, changed {report.changed}, errors {report.errors}, "
                f"{report.duration_ms} ms"
            )
            for key, values in report.details.items():
                print(f"  {key}: {json.dumps(values, default=str)[:500]}")


def _jobs_runs(settings: Settings, args: argparse.Namespace) -> None:
    anyio.run(_run_jobs_runs, settings, args)


async def _run_jobs_runs(settings: Settings, args: argparse.Namespace) -> None:
    from handoff.container import Container
    from handoff.tables import Table

    async with Container.build(settings) as container:
        runs = await container.lifecycle.recent_runs(args.job, args.limit)
    table = Table(title="recent job runs")
    for column in ("job", "started", "ms", "examined", "changed", "errors", "holder"):
        table.add_column(column)
    for r in runs:
        table.add_row(
            r["job"],
            r["started_at"].strftime("%Y-%m-%d %H:%M:%S"),
            str(r["duration_ms"]),
            str(r["examined"]),
            str(r["changed"]),
            str(r["errors"]),
            r["holder"],
        )
    print(table.render())


# -- doctor -------------------------------------------------------------------------------------


def _doctor(settings: Settings, args: argparse.Namespace) -> None:
    anyio.run(_run_doctor, settings, args.json)


async def _run_doctor(settings: Settings, as_json: bool) -> None:
    from handoff.container import Container
    from handoff.tables import Table

    settings.db.auto_migrate = False  # report, never change anything
    container = Container.build(settings)
    try:
        report = await container.health.check_ready()
    finally:
        await container.close()
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        table = Table(title=f"handoff doctor: {'ready' if report['ready'] else 'NOT READY'}")
        for column in ("check", "backend", "ok", "latency ms", "detail"):
            table.add_column(column)
        for check in report["checks"]:
            detail = check.get("error") or json.dumps(check.get("schema") or {"hit_ratio": check.get("hit_ratio")})
            table.add_row(
                check["name"],
                str(check.get("backend", "")),
                "yes" if check["ok"] else "NO",
                str(check.get("latency_ms", "")),
                str(detail),
            )
        print(table.render())
    if not report["ready"]:
        sys.exit(1)
