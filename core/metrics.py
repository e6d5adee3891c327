"""Prometheus metrics: a registry per app, process-wide ingest and subscription counters.

Every app instance gets its own `CollectorRegistry` (tests build many apps in one process;
the default registry would reject the second app's metrics as duplicates). Counters that
code outside any app increments (ingest in the worker, live subscriptions) are created
unregistered at import and registered into each app's registry and the worker's.

Labels stay bounded: operation names come from an allow-list or the first N distinct names
(then "other"); tickers only from METRICS_LAG_TICKERS; never raw queries.

Other modules call, for example::

    from core import metrics
    metrics.subscriptions.inc()          # a subscription started (dec() when it ends)
    metrics.ingest_written(changes)      # bar changes recorded by a writer
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from graphql import OperationDefinitionNode
    from sqlalchemy.ext.asyncio import AsyncEngine

    from core.cache import FieldCache

# The logger keeps the name it had inside graphql_api, which log filters and dashboards use.
log = logging.getLogger("graphql_api.metrics")

PREFIX = "market_graphql"
#: The most tickers METRICS_LAG_TICKERS may name (each is a label value on every scrape).
MAX_LAG_TICKERS = 100
#: procrastinate's job states, all exported (0 when absent) so series do not vanish.
JOB_STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborting", "aborted")
#: Label for requests that never got as far as a parsed operation.
NO_OPERATION = "none"
ANONYMOUS = "anonymous"
OTHER = "other"

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SQL_COUNT_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 100)
SQL_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

# --- process-wide metrics (incremented outside any app) ----------------------------------

#: Active GraphQL subscriptions of this process: `subscriptions.inc()` / `.dec()`.
subscriptions = Gauge(
    f"{PREFIX}_subscriptions_active",
    "GraphQL subscriptions open (in all worker processes of `serve --workers N`).",
    registry=None,
    multiprocess_mode="livesum",
)
_rows_written = Counter(
    f"{PREFIX}_ingest_rows_written",
    "Bars written (new or revised) by this process, by timeframe.",
    ["timeframe"],
    registry=None,
)
_rows_rejected = Counter(
    f"{PREFIX}_ingest_rows_rejected",
    "Input rows rejected by validation in this process.",
    registry=None,
)
#: Whether each dependency answered the last readiness check (1) or not (0): Redis down
#: leaves the service ready but degraded, and this is where that shows.
dependency_up = Gauge(
    f"{PREFIX}_dependency_up",
    "Whether a dependency answered the last /readyz check (1 yes, 0 no).",
    ["dependency"],
    registry=None,
    # Over several worker processes: 0 when any live one found the dependency down.
    multiprocess_mode="livemin",
)
#: Where reads went (core.replicas.ROUTES): a replica, or the primary and why.
read_routes = Counter(
    f"{PREFIX}_read_routes",
    "Reads routed, by route: replica, or primary with the reason (no replica in rotation, "
    "a Min-Version wait that expired, a failover after a replica failed mid-read).",
    ["route"],
    registry=None,
)
_PROCESS_METRICS: tuple[Collector, ...] = (
    subscriptions,
    _rows_written,
    _rows_rejected,
    dependency_up,
    read_routes,
)


#: The environment variable prometheus_client reads (at import) for multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The directory worker processes share their metric values in (`serve --workers N`).

    prometheus_client decides at import whether values live in this process or in files
    there, so the CLI sets it before uvicorn starts the workers (graphql_api/cli.py).
    """
    return os.environ.get(MULTIPROC_ENV) or None


def ingest_written(changes: Iterable[Any]) -> None:
    """Count bars written, from recorded changes (objects with `timeframe` and `rows`)."""
    for change in changes:
        if change.rows > 0:
            # Timeframes are the Interval codes (a closed set): a bounded label.
            _rows_written.labels(str(change.timeframe)).inc(change.rows)


def ingest_rejected(rows: int) -> None:
    """Count input rows rejected by validation."""
    if rows > 0:
        _rows_rejected.inc(rows)


@contextmanager
def track_subscription() -> Iterator[None]:
    """Count a subscription as active for the duration of the block."""
    subscriptions.inc()
    try:
        yield
    finally:
        subscriptions.dec()


def _names(value: str, limit: int | None = None) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    return names[:limit] if limit is not None else names


def _base_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    for collector in _PROCESS_METRICS:
        registry.register(collector)
    # The standard process, platform and GC collectors are stateless readers: safe to share.
    for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(standard)
    return registry


class OperationLabels:
    """Operation names as label values: an allow-list, else the first `limit` names seen."""

    def __init__(self, allowed: Sequence[str], limit: int) -> None:
        self.allowed = frozenset(allowed)
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, operation: OperationDefinitionNode | None) -> str:
        """The label value for a parsed operation (None: the request never got that far)."""
        if operation is None:
            return NO_OPERATION
        if operation.name is None:
            return ANONYMOUS
        name = operation.name.value
        if self.allowed:
            return name if name in self.allowed else OTHER
        if name in self.seen:
            return name
        if len(self.seen) < self.limit:
            self.seen.add(name)
            return name
        return OTHER


class _DatabaseReadings:
    """Lag per configured ticker and job queue depth, read at scrape with a short cache."""

    def __init__(self, settings: Settings, failures: Counter) -> None:
        self.tickers = [t.upper() for t in _names(settings.metrics_lag_tickers, MAX_LAG_TICKERS)]
        self.ttl = settings.metrics_db_refresh_seconds
        self.failures = failures
        self.engine: AsyncEngine | None = None
        self.lag: list[tuple[str, str, float]] = []
        self.jobs: dict[str, int] | None = None
        self._read_at = -float("inf")
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Re-read from the database when the cached readings are older than the TTL."""
        if self.engine is None or time.monotonic() - self._read_at < self.ttl:
            return
        async with self._lock:
            if time.monotonic() - self._read_at < self.ttl:
                return  # a concurrent scrape refreshed while we waited
            self._read_at = time.monotonic()
            # Bounded: a scrape must answer even when PostgreSQL is stuck.
            await asyncio.gather(
                self._guard("lag", self._read_lag()), self._guard("jobs", self._read_jobs())
            )

    async def _guard(self, reading: str, work: Any) -> None:
        try:
            await asyncio.wait_for(work, timeout=2.0)
        except Exception as exc:
            self.failures.labels(reading).inc()
            log.debug("metrics reading %s failed: %r", reading, exc)

    async def _read_lag(self) -> None:
        if not self.tickers or self.engine is None:
            return
        async with self.engine.connect() as conn:
            result = await conn.exec_driver_sql(
                "SELECT s.ticker, bs.timeframe, extract(epoch FROM now() - bs.last_ts)::float8 "
                "FROM bar_series bs JOIN symbols s ON s.id = bs.symbol_id "
                "WHERE s.ticker = ANY($1::text[])",
                (self.tickers,),
            )
            rows: Sequence[Any] = result.all()
            self.lag = [(str(r[0]), str(r[1]), float(r[2])) for r in rows]

    async def _read_jobs(self) -> None:
        if self.engine is None:
            return
        try:
            async with self.engine.connect() as conn:
                result = await conn.exec_driver_sql(
                    "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1"
                )
                rows: Sequence[Any] = result.all()
                counts = {str(r[0]): int(r[1]) for r in rows}
        except Exception:
            self.jobs = None  # no job queue (schema absent) or unreachable: no samples
            raise
        self.jobs = {s: counts.get(s, 0) for s in JOB_STATUSES}

    def collect(self) -> Iterator[Metric]:
        """The cached readings as gauges."""
        lag = GaugeMetricFamily(
            f"{PREFIX}_ingest_lag_seconds",
            "Now minus the start of the newest stored bar, per configured ticker and timeframe.",
            labels=["ticker", "timeframe"],
        )
        for ticker, timeframe, seconds in self.lag:
            lag.add_metric([ticker, timeframe], seconds)
        yield lag
        jobs = GaugeMetricFamily(
            f"{PREFIX}_jobs", "Jobs in the procrastinate queue by status.", labels=["status"]
        )
        for status, count in (self.jobs or {}).items():
            jobs.add_metric([status], count)
        yield jobs


class _PoolCollector:
    """Connection pool gauges, read from the engine's pool at scrape time."""

    def __init__(self) -> None:
        self.engine: AsyncEngine | None = None

    def collect(self) -> Iterator[Metric]:
        """In use, idle, overflow and configured size of the pool (nothing without a pool)."""
        pool: Any = self.engine.pool if self.engine is not None else None
        if pool is None or not hasattr(pool, "checkedout"):
            return  # NullPool (CLI engines) has no counts
        # overflow() starts at -pool_size and counts up as connections are opened; it is only
        # "overflow" once above zero.
        readings = (
            ("in_use", "Connections checked out of the pool.", pool.checkedout()),
            ("idle", "Connections idle in the pool.", pool.checkedin()),
            ("overflow", "Connections open beyond the pool size.", max(pool.overflow(), 0)),
            ("size", "Configured pool size.", pool.size()),
        )
        for name, doc, value in readings:
            yield GaugeMetricFamily(f"{PREFIX}_db_pool_{name}", doc, value=value)


class _ReplicaState(Protocol):
    """What the collector reads of a replica (core.replicas.Replica; not imported: that
    module counts its routes here)."""

    name: str
    up: bool
    lag_seconds: float | None
    lag_bytes: int | None


class ReplicaSource(Protocol):
    """Where replica states come from (core.replicas.ReadRouter)."""

    @property
    def replicas(self) -> Sequence[_ReplicaState]: ...


class _ReplicaCollector:
    """Each read replica's state and lag, from the router's last check (no query at scrape)."""

    def __init__(self) -> None:
        self.router: ReplicaSource | None = None

    def collect(self) -> Iterator[Metric]:
        """Up (in rotation), lag in seconds of replay and in bytes of WAL, per replica."""
        if self.router is None:
            return
        up = GaugeMetricFamily(
            f"{PREFIX}_replica_up",
            "Whether a read replica is in rotation (1) or taken out (0).",
            labels=["replica"],
        )
        seconds = GaugeMetricFamily(
            f"{PREFIX}_replica_lag_seconds",
            "Replay lag of a read replica (0 when it has replayed all it received).",
            labels=["replica"],
        )
        lag_bytes = GaugeMetricFamily(
            f"{PREFIX}_replica_lag_bytes",
            "WAL bytes the primary has written that a read replica has not replayed yet.",
            labels=["replica"],
        )
        for replica in self.router.replicas:
            up.add_metric([replica.name], 1 if replica.up else 0)
            if replica.lag_seconds is not None:
                seconds.add_metric([replica.name], replica.lag_seconds)
            if replica.lag_bytes is not None:
                lag_bytes.add_metric([replica.name], replica.lag_bytes)
        yield up
        yield seconds
        yield lag_bytes


class _CacheCollector:
    """The field cache's counters (FieldCache.stats), read at scrape time."""

    def __init__(self) -> None:
        self.cache: FieldCache | None = None

    def collect(self) -> Iterator[Metric]:
        """Hits, misses, errors and computed values of the cache (nothing when it is off)."""
        if self.cache is None:
            return
        backend = "redis" if self.cache.redis else "memory"
        stats = self.cache.stats
        for name, doc, value in (
            ("hits", "Cache lookups answered from the cache.", stats.hits),
            ("misses", "Cache lookups that missed (or failed).", stats.misses),
            ("errors", "Cache calls that failed (served from PostgreSQL).", stats.errors),
            ("computed", "Cache values computed from PostgreSQL.", stats.computed),
        ):
            family = CounterMetricFamily(f"{PREFIX}_cache_{name}", doc, labels=["backend"])
            family.add_metric([backend], value)
            yield family


class AppMetrics:
    """The metrics of one app instance, in a registry of its own."""

    def __init__(self, settings: Settings) -> None:
        self.registry = _base_registry()
        self.operation_label = OperationLabels(
            _names(settings.metrics_operation_names), settings.metrics_max_operations
        )
        r = self.registry
        self.request_seconds = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "GraphQL request latency by operation name and outcome (ok, error, rejected).",
            ["operation", "outcome"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.request_sql_statements = Histogram(
            f"{PREFIX}_request_sql_statements",
            "SQL statements run per GraphQL request.",
            ["operation"],
            buckets=SQL_COUNT_BUCKETS,
            registry=r,
        )
        self.request_sql_seconds = Histogram(
            f"{PREFIX}_request_sql_seconds",
            "Time spent in SQL statements per GraphQL request.",
            ["operation"],
            buckets=SQL_SECONDS_BUCKETS,
            registry=r,
        )
        self.slow_sql = Counter(
            f"{PREFIX}_slow_sql_statements",
            "SQL statements slower than SLOW_SQL_MS.",
            registry=r,
        )
        self.refresh_failures = Counter(
            f"{PREFIX}_metrics_reading_failures",
            "Scrape-time database readings that failed, by reading (lag, jobs).",
            ["reading"],
            registry=r,
        )
        self._children: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        self.pool = _PoolCollector()
        self.cache = _CacheCollector()
        self.readings = _DatabaseReadings(settings, self.refresh_failures)
        self.replicas = _ReplicaCollector()
        for collector in (self.pool, self.cache, self.readings, self.replicas):
            r.register(collector)
        self.shared = _SharedExposition(self) if multiprocess_dir() else None

    def attach(
        self, engine: AsyncEngine, cache: FieldCache | None, router: ReplicaSource | None = None
    ) -> None:
        """Read pool, cache, database and replica gauges from these (the app starts)."""
        self.pool.engine = engine
        self.cache.cache = cache
        self.readings.engine = engine
        self.replicas.router = router
        if self.shared is not None:
            self.shared.start()

    def detach(self) -> None:
        """Forget the engine, cache and router (the app stopped)."""
        if self.shared is not None:
            self.shared.stop()
        self.pool.engine = None
        self.cache.cache = None
        self.readings.engine = None
        self.replicas.router = None

    def observe_request(
        self,
        operation: OperationDefinitionNode | None,
        outcome: str,
        seconds: float,
        sql_count: int,
        sql_s: float,
    ) -> None:
        """Record one finished GraphQL request."""
        key = (self.operation_label(operation), outcome)
        children = self._children.get(key)
        if children is None:
            # labels() takes a lock and builds a key each call; the set of children is bounded.
            label = key[0]
            children = self._children[key] = (
                self.request_seconds.labels(label, outcome),
                self.request_sql_statements.labels(label),
                self.request_sql_seconds.labels(label),
            )
        children[0].observe(seconds)
        children[1].observe(sql_count)
        children[2].observe(sql_s)

    async def exposition(self) -> bytes:
        """The text exposition, database readings refreshed first when stale."""
        await self.readings.refresh()
        if self.shared is not None:
            return await self.shared.exposition()
        return generate_latest(self.registry)

    def mount(self, app: FastAPI) -> None:
        """Serve the registry at /metrics."""
        from fastapi.responses import Response

        @app.get("/metrics", include_in_schema=False)
        async def metrics_endpoint() -> Response:
            return Response(await self.exposition(), media_type=CONTENT_TYPE_LATEST)


class _SharedExposition:
    """/metrics of `serve --workers N`: one answer summing every worker process.

    Counters, histograms and gauges created with prometheus_client keep their values in
    files under PROMETHEUS_MULTIPROC_DIR; `MultiProcessCollector` sums them at scrape, so
    whichever worker answers reports all of them. Readings taken at scrape from this
    process's own objects (pool, cache) would show one worker only: each worker copies them
    into shared gauges and counters every PUBLISH_SECONDS and before answering a scrape.
    Database readings and replica lag describe shared servers, so the answering worker's
    own readings are exact. The process and GC collectors are per process and left out.
    """

    PUBLISH_SECONDS = 1.0

    def __init__(self, app: AppMetrics) -> None:
        self.app = app
        self.pool = {
            name: Gauge(f"{PREFIX}_db_pool_{name}", doc, registry=None, multiprocess_mode="livesum")
            for name, doc in (
                ("in_use", "Connections checked out of the pools of all workers."),
                ("idle", "Connections idle in the pools of all workers."),
                ("overflow", "Connections open beyond the pool size, all workers."),
                ("size", "Configured pool size times the number of workers."),
            )
        }
        self.cache = {
            name: Counter(f"{PREFIX}_cache_{name}", doc, ["backend"], registry=None)
            for name, doc in (
                ("hits", "Cache lookups answered from the cache."),
                ("misses", "Cache lookups that missed (or failed)."),
                ("errors", "Cache calls that failed (served from PostgreSQL)."),
                ("computed", "Cache values computed from PostgreSQL."),
            )
        }
        self.published: dict[str, float] = {}
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop(), name="metrics-publish")

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
        from prometheus_client import multiprocess

        # This process's live gauges (pool, subscriptions) leave the sums with it.
        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(os.getpid())

    async def _loop(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(self.PUBLISH_SECONDS)

    def publish(self) -> None:
        """Copy this process's pool gauges and cache counts into the shared files."""
        for family in self.app.pool.collect():
            name = family.name.removeprefix(f"{PREFIX}_db_pool_")
            self.pool[name].set(family.samples[0].value)
        cache = self.app.cache.cache
        if cache is None:
            return
        backend = "redis" if cache.redis else "memory"
        stats = cache.stats
        for name in self.cache:
            value = float(getattr(stats, name))
            delta = value - self.published.get(name, 0.0)
            if delta > 0:
                self.cache[name].labels(backend).inc(delta)
            self.published[name] = value

    async def exposition(self) -> bytes:
        from prometheus_client import multiprocess

        self.publish()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(self.app.readings)
        registry.register(self.app.replicas)
        # Reading every worker's files is disk I/O: off the event loop.
        return await asyncio.to_thread(generate_latest, registry)


def worker_registry() -> CollectorRegistry:
    """The registry a worker process serves: ingest counters and process gauges."""
    return _base_registry()


def start_worker_server(settings: Settings, start: Callable[..., Any] | None = None) -> bool:
    """Serve the worker's metrics on WORKER_METRICS_PORT (a thread); False when it is 0."""
    if settings.worker_metrics_port == 0:
        return False
    from prometheus_client import start_http_server

    (start or start_http_server)(
        settings.worker_metrics_port, addr=settings.host, registry=worker_registry()
    )
    log.info("worker metrics at http://%s:%s/metrics", settings.host, settings.worker_metrics_port)
    return True
