"""Settings: the only place the environment is read.

Loaded once by the CLI (or a test) and passed down; nothing reads the environment at import time.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class DatabaseSettings(BaseModel):
    url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL. Unset: a SQLite file in the user data dir.",
    )
    auto_migrate: bool = Field(default=True, description="Upgrade the schema at server start.")
    busy_timeout_ms: int = Field(default=10_000, ge=0, description="SQLite: how long a writer waits for the lock.")
    pool_size: int = Field(default=20, ge=1, description="Connections kept open (overflow ones are closed).")
    max_overflow: int = Field(default=10, ge=0)
    pool_timeout_seconds: float = Field(default=5.0, gt=0, description="Wait for a free pooled connection.")
    pool_recycle_seconds: int = Field(default=1800, ge=-1)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    statement_timeout_ms: int = Field(default=15_000, ge=0, description="PostgreSQL: per statement; 0 = none.")
    breaker_failure_threshold: int = Field(default=5, ge=1, description="Consecutive failures that open the breaker.")
    breaker_reset_seconds: float = Field(default=5.0, gt=0, description="How long the breaker fails fast.")
    retry_attempts: int = Field(default=3, ge=1, description="Attempts for idempotent operations.")
    retry_deadline_seconds: float = Field(default=5.0, ge=0)
    schema_name: str | None = Field(
        default=None,
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema to keep our tables in (created if missing); default: the search_path.",
    )


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Extra Host header values accepted besides loopback (DNS-rebinding protection).",
    )
    # Connections (http/connections.py): uvicorn closes an idle kept-alive connection, but a new
    # connection that never sends, or sends its headers a byte at a time, it would keep forever.
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A request's line and headers must arrive within this long, or it is closed."
    )
    body_timeout_seconds: float = Field(
        default=60.0, gt=0, description="A request's body must arrive within this long after its headers."
    )
    keep_alive_seconds: int = Field(
        default=5, ge=1, description="An idle kept-alive connection is closed after this long."
    )
    max_connections: int = Field(
        default=4096, ge=1, description="Open connections per replica; more are answered 503 and closed at once."
    )
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, description="Request line plus headers, at most.")
    backlog: int = Field(default=2048, ge=1, description="Connections the kernel queues before they are accepted.")
    # MCP sessions (http/admission.py). A principal is the token's agent, or the client address without auth.
    max_sessions: int = Field(
        default=10_000, ge=1, description="Open MCP sessions per replica, all principals together."
    )
    max_sessions_per_principal: int = Field(
        default=100, ge=1, description="Open MCP sessions one principal may hold per replica; past it: 429."
    )
    session_idle_seconds: float = Field(
        default=1800, gt=0, description="A session with no request in flight for this long is closed."
    )
    unused_session_seconds: float = Field(
        default=60, gt=0, description="A session that made no request after `initialize` is closed after this long."
    )


class LimitSettings(BaseModel):
    request_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Deadline for one tool call or resource read; past it: `unavailable`."
    )
    max_content_bytes: int = Field(default=8 * MIB, ge=1)
    max_metadata_bytes: int = Field(default=64 * 1024, ge=2)
    max_page_size: int = Field(default=500, ge=1)
    max_page_bytes: int = Field(
        default=4 * MIB,
        ge=1024,
        description="Content one page of entries may carry; an entry larger than this comes alone in its page.",
    )
    max_key_length: int = Field(default=128, ge=8)


class LifecycleSettings(BaseModel):
    default_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    max_ttl_seconds: int = Field(default=365 * 24 * 3600, ge=1)
    idle_seconds: int = Field(default=3600, ge=1, description="Without activity this long, a session is dormant.")
    jobs_enabled: bool = Field(default=True, description="Run the lifecycle jobs inside the server.")
    batch_size: int = Field(default=200, ge=1, description="Sessions per transaction in a job.")
    chunk_rows: int = Field(default=500, ge=1, description="Entries packed or deleted per transaction.")
    job_write_pause_ms: float = Field(
        default=10,
        ge=0,
        description="After each of a job's write transactions, pause this long (or as long as it held the lock).",
    )
    max_sessions_per_run: int = Field(default=10_000, ge=1)
    mark_dormant_interval_seconds: float = Field(default=60, gt=0)
    expire_interval_seconds: float = Field(default=60, gt=0)
    archive_interval_seconds: float = Field(default=600, gt=0)
    purge_interval_seconds: float = Field(default=3600, gt=0)
    handoff_accept_seconds: int = Field(
        default=7 * 24 * 3600, ge=1, description="A handoff not accepted within this long after it is made expires."
    )
    expire_handoffs_interval_seconds: float = Field(default=60, gt=0)
    merge_search_interval_seconds: float = Field(default=60, gt=0)


class BriefSettings(BaseModel):
    default_token_budget: int = Field(default=2000, ge=64)
    max_token_budget: int = Field(default=32_000, ge=64)


class CacheSettings(BaseModel):
    redis_url: SecretStr | None = Field(default=None, description="Unset: a bounded in-process cache.")
    key_prefix: str = "handoff:"
    socket_timeout_seconds: float = Field(default=0.25, gt=0)
    max_connections: int = Field(default=64, ge=1)
    memory_max_bytes: int = Field(default=64 * MIB, ge=1)
    memory_max_entries: int = Field(default=10_000, ge=1)
    breaker_failure_threshold: int = Field(default=3, ge=1)
    breaker_reset_seconds: float = Field(default=5.0, gt=0)


class AnalysisLimits(BaseModel):
    max_file_bytes: int = Field(default=1 * MIB, ge=1)
    max_files: int = Field(default=500, ge=1, le=10_000)
    max_total_bytes: int = Field(default=32 * MIB, ge=1)
    max_seconds: float = Field(default=30.0, gt=0, description="Wall time per analyze_codebase call.")
    parse_seconds: float = Field(default=5.0, gt=0, description="Per-file tree-sitter parse timeout.")
    worker_memory_bytes: int = Field(default=1024 * MIB, ge=64 * MIB)
    max_concurrent: int = Field(default=2, ge=1, description="Analysis worker processes at once.")


class AnalysisSettings(BaseModel):
    roots: list[Path] = Field(default_factory=list, description="Readable roots; empty = working directory.")
    limits: AnalysisLimits = Field(default_factory=AnalysisLimits)


class MetricsSettings(BaseModel):
    scrape_timeout_seconds: float = Field(
        default=2.0, gt=0, description="/metrics: bound on each database read (counts, readiness) at scrape time."
    )
    inventory_max_age_seconds: float = Field(
        default=10.0, ge=0, description="/metrics: reuse session/handoff counts younger than this (0 = every scrape)."
    )


class TracingSettings(BaseModel):
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces. Unset: tracing off.",
    )
    service_name: str = "handoff"
    sample_ratio: float = Field(default=1.0, ge=0, le=1, description="Share of new traces kept (parent decides).")
    headers: SecretStr | None = Field(default=None, description="Exporter headers: key=value,key2=value2.")
    export_timeout_seconds: float = Field(default=10.0, gt=0)


class RedactionSettings(BaseModel):
    enabled: bool = Field(default=True, description="Replace secrets with [REDACTED:kind] before storing anything.")
    extra_patterns: list[str] = Field(
        default_factory=list, description="More regular expressions whose matches are redacted (kind `custom`)."
    )

    @field_validator("extra_patterns")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"extra pattern {pattern!r} is not a valid regular expression: {error}") from None
        return patterns


# Signature algorithms an access token may use. Only asymmetric ones: the keys come from the issuer's
# public JWKS, so an HMAC "secret" would be public (the classic RS256→HS256 confusion), and `none` is
# no signature at all.
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class OAuthSettings(BaseModel):
    """HANDOFF_AUTH__MODE=oauth: /mcp is an OAuth 2.1 resource server for one authorization server."""

    issuer: str | None = Field(
        default=None,
        description="The authorization server's issuer URL, exactly as it writes `iss` (required for oauth).",
    )
    resource: str | None = Field(
        default=None,
        description="This server's resource identifier, its public /mcp URL: tokens' `aud` must name it (required).",
    )
    required_scopes: list[str] = Field(
        default_factory=list, description="Scopes every token must carry (JSON list); missing ones: 403."
    )
    agent_claim: str = Field(default="sub", min_length=1, description="The claim naming the acting agent.")
    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "PS256", "ES256", "EdDSA"],
        description="Signature algorithms accepted (JSON list); asymmetric only.",
    )
    leeway_seconds: int = Field(default=30, ge=0, le=300, description="Clock skew allowed on `exp` and `nbf`.")
    jwks_cache_seconds: float = Field(default=300, gt=0, le=86_400, description="How long fetched keys are used.")
    jwks_min_refetch_seconds: float = Field(
        default=10, ge=0, description="At most one key fetch per this interval (an unknown `kid` asks for one)."
    )
    fetch_timeout_seconds: float = Field(default=5.0, gt=0, description="Bound on one issuer metadata or JWKS fetch.")

    @field_validator("issuer", "resource")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlsplit(value)
        if parsed.scheme not in ("https", "http") or not parsed.hostname or parsed.fragment or parsed.query:
            raise ValueError(f"{value!r} is not an absolute http(s) URL without query or fragment")
        # Tokens travel to and keys come from these URLs: plain http only for a server on this machine.
        if parsed.scheme == "http" and not _is_loopback_name(parsed.hostname):
            raise ValueError(f"{value!r} must use https (plain http only on loopback)")
        return value

    @field_validator("algorithms")
    @classmethod
    def _asymmetric(cls, algorithms: list[str]) -> list[str]:
        if not algorithms:
            raise ValueError("at least one algorithm is needed")
        for name in algorithms:
            if name not in ASYMMETRIC_ALGORITHMS:
                raise ValueError(f"{name!r} is not allowed; choose from {', '.join(ASYMMETRIC_ALGORITHMS)}")
        return algorithms


def _is_loopback_name(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AuthSettings(BaseModel):
    mode: Literal["none", "tokens", "oauth"] = Field(
        default="none",
        description=(
            "none: no authentication (loopback binds only); tokens: HTTP requests need a bearer token made "
            "with `handoff tokens create`; oauth: they need a JWT access token from the authorization server."
        ),
    )
    oauth: OAuthSettings = Field(default_factory=OAuthSettings)


class NotifySettings(BaseModel):
    backend: Literal["auto", "postgres", "redis", "local", "off"] = Field(
        default="auto",
        description=(
            "How change notices reach subscribers on every replica. auto: redis when a Redis URL is set, "
            "else postgres on PostgreSQL, else local (this process only); off: no subscriptions."
        ),
    )
    max_subscriptions_per_connection: int = Field(
        default=100, ge=1, description="resources/subscribe URIs one connection may hold (and URIs per listen stream)."
    )
    max_listen_streams: int = Field(default=1024, ge=1, description="Open subscriptions/listen streams per server.")


class StreamSettings(BaseModel):
    """Resumable HTTP streams: the SSE events of each response kept in the database for a while, so a
    client whose stream dropped reconnects with Last-Event-ID and gets what it missed."""

    resumable: bool = Field(default=True, description="Keep SSE events for resumption (HTTP only).")
    retry_ms: int = Field(default=1000, ge=0, description="The SSE `retry` hint: how long a client waits to reconnect.")
    retention_seconds: int = Field(default=600, ge=1, description="How long an event can be replayed.")
    max_events_per_stream: int = Field(default=1000, ge=2, description="A stream keeps its newest events, this many.")
    max_event_bytes: int = Field(
        default=1 * MIB, ge=1024, description="A larger response is replayed as an error that says to call again."
    )
    max_total_bytes: int = Field(default=256 * MIB, ge=MIB, description="All streams together; the oldest go first.")
    expire_interval_seconds: float = Field(default=60, gt=0, description="How often old events are deleted.")


class LogSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(BaseSettings):
    """Every knob of the server. Env: HANDOFF_<GROUP>__<NAME>, plus the documented short aliases."""

    model_config = SettingsConfigDict(
        env_prefix="HANDOFF_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    brief: BriefSettings = Field(default_factory=BriefSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    redaction: RedactionSettings = Field(default_factory=RedactionSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    streams: StreamSettings = Field(default_factory=StreamSettings)

    # How `handoff serve` talks to clients when --transport is not given (`handoff stdio` forces stdio):
    # MCP client launchers often cannot pass our flags, but they can always set the environment.
    transport: Literal["http", "stdio"] = "http"

    # Short, documented names from SPEC.md; they win over the nested form when set.
    database_url: SecretStr | None = None
    redis_url: SecretStr | None = None
    analysis_roots: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None

    def model_post_init(self, __context: object) -> None:
        if self.database_url is not None:
            self.db.url = self.database_url
        if self.redis_url is not None:
            self.cache.redis_url = self.redis_url
        if self.analysis_roots:
            self.analysis.roots = [Path(p) for p in self.analysis_roots.split(":") if p]
        if self.log_level is not None:
            self.log.level = self.log_level

    def database_url_value(self) -> str:
        """The effective SQLAlchemy URL (async driver), defaulting to the user data dir."""
        if self.db.url is not None:
            return normalise_database_url(self.db.url.get_secret_value())
        data_dir = Path(platformdirs.user_data_dir("handoff", appauthor=False))
        return f"sqlite+aiosqlite:///{data_dir / 'handoff.db'}"


def normalise_database_url(url: str) -> str:
    """Accept the plain URLs users paste and pick the async driver for them."""
    if url.startswith("sqlite:///") or url == "sqlite://":
        return "sqlite+aiosqlite" + url[len("sqlite") :]
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url
