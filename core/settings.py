"""Service settings, read from environment variables and an optional `.env` file."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import Field, create_model, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError
from core.providers import setting_fields

if TYPE_CHECKING:
    # SQLAlchemy is imported where a URL object is built (sqlalchemy_url, read_urls): it
    # costs ~0.2-0.3 s, which commands that only connect with asyncpg (ingest) need not pay.
    from sqlalchemy.engine import URL

    _WithProviders = BaseSettings
else:
    # One optional field per provider setting (e.g. alpaca_api_key), declared in
    # core/providers.py; code reads them by name (workers/provider_ingest.py).
    _WithProviders = create_model("_WithProviders", __base__=BaseSettings, **setting_fields())


class Settings(_WithProviders):
    """Everything the service, the workers and the CLI can be configured with."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL; unset means an embedded server is started from a wheel.",
    )
    redis_url: str | None = Field(default=None, description="Redis URL; unset means in-memory.")
    data_dir: Path | None = Field(
        default=None, description="Where the embedded PostgreSQL keeps its data."
    )

    pool_size: int = Field(default=10, ge=1, le=1000)
    max_overflow: int = Field(default=20, ge=0, le=1000)
    pool_timeout: float = Field(default=10.0, gt=0)
    pool_pre_ping: bool = Field(
        default=False,
        description="Ping each pooled connection before use. Off by default: a read on a "
        "connection the server dropped is retried once on a new one instead (loaders/sql.py).",
    )
    plan_cache_mode: Literal["auto", "force_generic_plan", "force_custom_plan"] = Field(
        default="force_generic_plan",
        description="PostgreSQL `plan_cache_mode` of API connections. Generic plans are made "
        "once per prepared statement; with `auto` PostgreSQL planned a bar page anew on every "
        "call (1.5 ms of a 0.1 ms statement: the bars table has a partition per year).",
    )
    statement_timeout_ms: int = Field(default=15_000, ge=0)
    db_client_timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Client-side deadline of one database call (seconds); unset: "
        "STATEMENT_TIMEOUT_MS + 2 s, so a frozen or unreachable server fails the request "
        "instead of holding it.",
    )
    db_connect_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Deadline for opening one database connection."
    )

    # Read replicas (core.replicas)
    read_database_urls: str = Field(
        default="",
        description="Comma-separated PostgreSQL URLs of streaming replicas that serve API "
        "reads; empty: every read goes to DATABASE_URL.",
    )
    replica_max_lag_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A replica further behind than this serves no reads until it catches up.",
    )
    replica_wait_seconds: float = Field(
        default=0.5,
        ge=0,
        description="How long a read that needs a data version (Min-Version) waits for a "
        "replica to reach it before it goes to the primary.",
    )
    replica_check_seconds: float = Field(
        default=1.0, gt=0, description="How often each replica's health and lag are read."
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    max_page_size_symbols: int = Field(default=500, ge=1)
    max_page_size_bars: int = Field(default=10_000, ge=1)
    default_page_size: int = Field(default=100, ge=1)
    max_series_points: int = Field(default=200_000, ge=1)
    max_intraday_range_days: int = Field(
        default=3_660, ge=1, description="Longest time range one request may span below D1."
    )

    allow_anonymous_ingest: bool = Field(
        default=False, description="Allow the ingest mutations without an API key."
    )
    load_demo_data: bool = Field(default=True, description="Load demo data on first embedded run.")

    # Caching
    cache_enabled: bool = Field(default=True, description="Field and response caching.")
    cache_timeout_seconds: float = Field(
        default=0.25, gt=0, description="Redis calls slower than this degrade to a miss."
    )
    http_cache_max_age: int = Field(
        default=5, ge=0, description="Cache-Control max-age of GET query responses (seconds)."
    )
    persisted_queries: Literal["off", "apq", "registered"] = Field(
        default="apq",
        description="Automatic persisted queries, or only registered ones (admins register).",
    )

    # Responses
    gzip_level: int = Field(
        default=5, ge=1, le=9, description="Gzip level for responses under 1 MiB."
    )
    gzip_large_level: int = Field(
        default=1,
        ge=1,
        le=9,
        description="Gzip level from 1 MiB up (level 1 is ~3x faster there for ~17% more bytes).",
    )

    # Execution
    compiled_plans: bool = Field(
        default=True,
        description="Answer the common query shapes with one SQL statement planned once per "
        "document (graphql_api/compiled.py); the rest run through the resolvers.",
    )
    fast_path: bool = Field(default=True, description="Complete plain record lists in one loop.")
    verify_fast_path: bool = Field(
        default=False,
        description="Run every query on both execution paths and fail on any difference (tests).",
    )

    # Security and limits
    require_read_key: bool = Field(default=False, description="Reads need a key with `read`.")
    introspection: Literal["on", "admin", "off"] = Field(
        default="on", description="Schema introspection: for everyone, admin keys only, or off."
    )
    api_key_cache_seconds: float = Field(
        default=10.0, ge=0, description="How long a resolved key is remembered per process."
    )
    max_query_cost: int = Field(default=1_000_000, ge=1)
    max_query_depth: int = Field(default=12, ge=1)
    max_aliases: int = Field(default=30, ge=1)
    max_tokens: int = Field(
        default=5_000,
        ge=1,
        description="Most tokens (comments included) in a document; parsing stops there.",
    )
    max_request_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest GraphQL request body (query and variables), or GET query "
        "string; larger ones get 413 (414 for GET) before they are read whole.",
    )
    max_header_bytes: int = Field(
        default=65_536,
        ge=4096,
        description="Largest request head (request line and headers) `serve` accepts; "
        "larger ones get 431.",
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Deadline for receiving a request head after connecting (408 after).",
    )
    request_body_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Deadline for receiving a whole request body (slow senders get 408).",
    )
    document_cache_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=0,
        description="Memory budget of the cache of parsed documents (estimated bytes).",
    )
    readiness_timeout_seconds: float = Field(
        default=0.8, gt=0, le=30, description="Deadline of each /readyz check."
    )
    rate_limit_cost_per_minute: int = Field(
        default=5_000_000, ge=0, description="Cost units per key (or IP) per minute; 0 = off."
    )

    # Operability: metrics, logs, traces (core.metrics, .logging_setup, .tracing)
    metrics_enabled: bool = Field(default=True, description="Prometheus metrics at /metrics.")
    metrics_operation_names: str = Field(
        default="",
        description="Comma-separated operation names used as metric labels (others: `other`); "
        "empty: the first METRICS_MAX_OPERATIONS names seen.",
    )
    metrics_max_operations: int = Field(default=50, ge=0, le=1000)
    metrics_lag_tickers: str = Field(
        default="", description="Comma-separated tickers whose ingest lag is exported (max 100)."
    )
    metrics_db_refresh_seconds: float = Field(
        default=10.0, ge=0, description="How long scrape-time readings (lag, job queue) are reused."
    )
    worker_metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the worker's /metrics; 0: none."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="Log lines as JSON or for a terminal (auto: console on a TTY)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_requests: bool = Field(default=True, description="Log each GraphQL request once.")
    slow_request_ms: float = Field(
        default=1000.0, ge=0, description="Requests this slow are logged at WARNING."
    )
    slow_sql_ms: float = Field(
        default=250.0, ge=0, description="Statements this slow are logged at WARNING."
    )
    slow_sql_explain: bool = Field(
        default=False, description="Log the EXPLAIN plan of slow statements of requests."
    )
    tracing_enabled: bool = Field(
        default=False, description="OpenTelemetry traces (needs the `tracing` extra)."
    )
    tracing_exporter: Literal["otlp", "console"] = "otlp"
    tracing_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP traces URL (default: OTEL_EXPORTER_OTLP_ENDPOINT)."
    )
    tracing_service_name: str = "market-graphql"
    tracing_sample_ratio: float = Field(default=1.0, ge=0, le=1)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    # Ingest workers
    ingest_batch_rows: int = Field(
        default=100_000, ge=1, description="Rows per write transaction (and per file chunk)."
    )
    worker_concurrency: int = Field(default=2, ge=1, le=256, description="Jobs run at once.")
    worker_poll_seconds: float = Field(
        default=5.0, gt=0, description="How often an idle worker looks for due (retried) jobs."
    )
    worker_heartbeat_seconds: float = Field(default=10.0, gt=0)
    worker_stalled_after_seconds: float = Field(
        default=30.0, gt=0, description="A worker silent this long is dead; its jobs are retried."
    )
    retry_stalled_cron: str = Field(
        default="* * * * *", description="When to retry jobs of dead workers (6th field: seconds)."
    )
    ingest_max_attempts: int = Field(default=5, ge=1)
    ingest_retry_base_seconds: float = Field(default=2.0, ge=0)
    ingest_retry_max_seconds: float = Field(default=600.0, ge=0)
    partitions_cron: str = Field(default="17 3 * * *")
    partitions_ahead_days: int = Field(default=400, ge=1)
    refresh_cron: str = Field(default="*/5 * * * *")
    refresh_provider: str = Field(default="binance")
    refresh_tickers: str = Field(
        default="", description="Comma-separated tickers kept fresh by the worker; empty: none."
    )
    refresh_timeframe: str = Field(default="M1")
    actions_provider: str = Field(
        default="",
        description="Provider whose splits and dividends the worker refreshes for every "
        "active equity symbol (polygon or alpaca); empty: none.",
    )
    actions_cron: str = Field(default="41 6 * * *", description="When to refresh actions.")
    actions_lookback_days: int = Field(
        default=30, ge=1, description="Ex-dates a refresh re-reads before today (corrections)."
    )
    actions_lookahead_days: int = Field(
        default=90, ge=0, description="Announced ex-dates a refresh reads after today."
    )
    ingest_overlap_bars: int = Field(
        default=3, ge=0, description="Bars re-fetched before the newest stored one (revisions)."
    )
    ingest_default_lookback_days: int = Field(
        default=30, ge=1, description="How far back a first fetch of a series starts."
    )

    # Live updates (GraphQL subscriptions over WebSocket; see graphql_api.live)
    live_allowed_origins: str = Field(
        default="",
        description="Comma-separated origins whose pages may open WebSockets (`*`: any); "
        "same-origin pages and non-browser clients always may.",
    )
    live_max_subscriptions_per_connection: int = Field(default=20, ge=1, le=1000)
    live_max_connections_per_ip: int = Field(
        default=100,
        ge=0,
        description="WebSockets one client address may hold open at once; more are refused "
        "at the handshake with HTTP 429 (0: no limit).",
    )
    live_max_symbols_per_subscription: int = Field(default=50, ge=1, le=10_000)
    live_queue_size: int = Field(
        default=256,
        ge=1,
        description="Ingest batches queued per subscription before it is cut off as too slow.",
    )
    live_max_replay_bars: int = Field(
        default=5_000, ge=1, description="Most bars per symbol a `since` replay may send."
    )
    live_max_bars_per_change: int = Field(
        default=1_000, ge=1, description="Newest bars sent for one ingest batch of one symbol."
    )
    live_max_indicators_per_subscription: int = Field(
        default=60, ge=1, le=1000, description="Most indicators one indicatorUpdates may ask for."
    )
    live_indicator_max_bars: int = Field(
        default=50_000,
        ge=1,
        description="Most bars a live indicator over the whole history (or since an anchor) "
        "keeps per symbol and interval; a subscription needing more is refused.",
    )
    live_socket_send_buffer: int = Field(
        default=262_144,
        ge=0,
        description="Kernel send buffer of a WebSocket (bytes; 0: the OS autotunes it, up to "
        "MBs per client that stops reading).",
    )

    @field_validator("live_allowed_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        if not value.strip():
            return value  # nothing to check: spares every command importing strawberry
        from strawberry.http.websocket_origin import normalize_allowed_origins

        normalize_allowed_origins([o.strip() for o in value.split(",") if o.strip()])
        return value

    @field_validator("database_url", "redis_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            backend = _backend_name(value)
        except ValueError as exc:
            raise ValueError(f"not a database URL: {exc}") from None
        if backend not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("read_database_urls")
    @classmethod
    def _check_read_urls(cls, value: str) -> str:
        for url in _split_urls(value):
            cls._check_database_url(url)
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @cached_property
    def sqlalchemy_url(self) -> URL:
        """The database URL with the asyncpg driver, for SQLAlchemy."""
        from sqlalchemy.engine import make_url

        return make_url(self._database_url()).set(drivername="postgresql+asyncpg")

    @property
    def read_urls(self) -> list[URL]:
        """The replicas' URLs with the asyncpg driver (READ_DATABASE_URLS)."""
        from sqlalchemy.engine import make_url

        return [
            make_url(url).set(drivername="postgresql+asyncpg")
            for url in _split_urls(self.read_database_urls)
        ]

    @property
    def asyncpg_dsn(self) -> str:
        """The database URL in the form asyncpg.connect() takes: the same URL with the
        `postgresql` scheme (asyncpg decodes the user, password and database itself)."""
        return "postgresql://" + self._database_url().split("://", 1)[1]

    def _database_url(self) -> str:
        if self.database_url is None:
            raise ConfigError("DATABASE_URL is not set and no embedded server was started")
        return self.database_url


def _backend_name(url: str) -> str:
    """`postgresql` of `postgresql+asyncpg://…`; ValueError for a string that is not a
    `scheme://…` URL or whose port is not a port number."""
    if "://" not in url:
        raise ValueError("no scheme://")
    parts = urlsplit(url)
    _ = parts.port  # urllib checks the port here
    return parts.scheme.split("+", 1)[0]


def _split_urls(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one message that names each variable."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "_".join(str(part) for part in err["loc"]).upper()
            lines.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(lines)) from None
