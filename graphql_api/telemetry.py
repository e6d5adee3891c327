"""Ties metrics, request logs and traces to each GraphQL request and each SQL statement.

One `Telemetry` per app: `create_app` builds it, `attach`es it to the engine and cache in the
lifespan and `mount`s /metrics; the GraphQL endpoint runs every request through
`observe_request`. The request's counters live in a context variable (core.reqstats)
that SQLAlchemy's cursor events, the cache and the loaders add to.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

from core import logging_setup, reqstats
from core.metrics import AppMetrics
from core.settings import Settings
from core.tracing import Tracing

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncEngine
    from starlette.requests import Request
    from starlette.responses import Response
    from strawberry import Schema

    from core.cache import FieldCache
    from core.replicas import ReadRouter

Handler = Callable[["Request"], Awaitable["Response"]]

# Attributes set on SQLAlchemy's per-statement ExecutionContext between the cursor events.
_STARTED = "_market_graphql_started"
_SPAN = "_market_graphql_span"


class Telemetry:
    """The metrics registry, request logging and tracer of one app instance."""

    def __init__(self, settings: Settings, *, tracer_provider: Any = None) -> None:
        self.settings = settings
        self.metrics = AppMetrics(settings) if settings.metrics_enabled else None
        self.tracing = Tracing.from_settings(settings, tracer_provider)
        self.log_requests = settings.log_requests
        self.slow_request_ms = settings.slow_request_ms
        self.slow_sql_seconds = settings.slow_sql_ms / 1000
        self.explain = settings.slow_sql_explain and settings.log_requests
        self.engine: AsyncEngine | None = None
        self._engines: list[AsyncEngine] = []
        #: Whether requests are observed at all (everything off: the endpoint runs bare).
        self.active = bool(self.metrics or self.tracing or self.log_requests)

    # --- wiring ---------------------------------------------------------------------------

    def mount(self, app: FastAPI) -> None:
        """Expose this telemetry to the endpoint (app.state) and serve /metrics."""
        app.state.telemetry = self
        if self.metrics is not None:
            self.metrics.mount(app)

    def instrument_schema(self, schema: Schema) -> None:
        """Spans on root fields, when tracing is on (leaf fields are never wrapped)."""
        if self.tracing is not None:
            self.tracing.instrument_schema(schema)

    def attach(
        self, engine: AsyncEngine, cache: FieldCache | None, router: ReadRouter | None = None
    ) -> None:
        """Count, time and trace the statements of the primary's and the replicas' engines;
        read gauges from engine, cache and router."""
        self.engine = engine
        self._engines = [engine, *(r.engine for r in (router.replicas if router else ()))]
        if self.metrics is not None:
            self.metrics.attach(engine, cache, router)
        if self.active:
            for each in self._engines:
                target = each.sync_engine
                event.listen(target, "before_cursor_execute", self._before_cursor)
                event.listen(target, "after_cursor_execute", self._after_cursor)
                event.listen(target, "handle_error", self._on_error)

    def detach(self) -> None:
        """Undo `attach` (the app is stopping) and flush traces."""
        self.engine = None
        engines, self._engines = self._engines, []
        for engine in engines if self.active else ():
            target = engine.sync_engine
            for name, fn in (
                ("before_cursor_execute", self._before_cursor),
                ("after_cursor_execute", self._after_cursor),
                ("handle_error", self._on_error),
            ):
                if event.contains(target, name, fn):
                    event.remove(target, name, fn)
        if self.metrics is not None:
            self.metrics.detach()
        if self.tracing is not None:
            self.tracing.shutdown()

    # --- SQL statements (sync: these run inside SQLAlchemy's greenlet) ----------------------

    def _before_cursor(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if reqstats.INTERNAL.get():
            return
        stats = reqstats.CURRENT.get()
        if stats is not None:
            stats.sql_count += 1
        if context is None:
            return  # SQLAlchemy's internal cursor calls (no context to carry the start time)
        if stats is not None and stats.tracer is not None and self.tracing is not None:
            setattr(context, _SPAN, self.tracing.sql_start(statement))
        setattr(context, _STARTED, time.perf_counter())

    def _after_cursor(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        started = getattr(context, _STARTED, None)
        if started is None:
            return
        elapsed = time.perf_counter() - started
        stats = reqstats.CURRENT.get()
        if stats is not None:
            stats.sql_seconds += elapsed
        span = getattr(context, _SPAN, None)
        if span is not None and self.tracing is not None:
            self.tracing.sql_end(span)
            setattr(context, _SPAN, None)
        if elapsed >= self.slow_sql_seconds and self.log_requests:
            self._slow_statement(statement, parameters, elapsed, executemany, stats)

    def _on_error(self, exception_context: Any) -> None:
        context = exception_context.execution_context
        if context is None:
            return
        started = getattr(context, _STARTED, None)
        stats = reqstats.CURRENT.get()
        if started is not None and stats is not None:
            stats.sql_seconds += time.perf_counter() - started
        span = getattr(context, _SPAN, None)
        if span is not None and self.tracing is not None:
            self.tracing.sql_end(span, exception_context.original_exception)
            setattr(context, _SPAN, None)

    def _slow_statement(
        self,
        statement: str,
        parameters: Any,
        elapsed: float,
        executemany: bool,
        stats: reqstats.RequestStats | None,
    ) -> None:
        if self.metrics is not None:
            self.metrics.slow_sql.inc()
        logging_setup.log_slow_sql(statement, elapsed)
        if (
            self.explain
            and stats is not None
            and not executemany
            and len(stats.slow_statements) < reqstats.MAX_SLOW_STATEMENTS
        ):
            stats.slow_statements.append((statement, tuple(parameters or ()), elapsed))

    # --- requests ---------------------------------------------------------------------------

    async def observe(self, request: Request, handler: Handler) -> Response:
        """Run `handler` for a GraphQL request, then record its metrics, log line and span."""
        stats = reqstats.RequestStats(request_id=getattr(request.state, "request_id", ""))
        if self.tracing is not None:
            stats.tracer = self.tracing.tracer
        token = reqstats.CURRENT.set(stats)
        try:
            if self.tracing is None:
                return await self._run(request, handler, stats)
            with self.tracing.request_span(request) as span:
                try:
                    return await self._run(request, handler, stats)
                finally:
                    self.tracing.finish_request(span, stats)
        finally:
            reqstats.CURRENT.reset(token)
            seconds = time.perf_counter() - stats.started
            self._record(request, stats, seconds)
            if stats.slow_statements and self.engine is not None:
                # After the reset: the EXPLAINs are not counted as the request's statements.
                await logging_setup.log_plans(self.engine, stats)
            # Contexts copied from the request's (a driver's timeout handle, a task) may
            # outlive it and hold these stats; without the request's document they hold a few
            # bytes, not its whole query text (tests/security/test_hostile.py).
            stats.info = None

    @staticmethod
    async def _run(request: Request, handler: Handler, stats: reqstats.RequestStats) -> Response:
        try:
            response = await handler(request)
        except BaseException:
            stats.outcome, stats.status = "error", 500
            raise
        if not stats.status:
            stats.status = response.status_code
        return response

    def _record(self, request: Request, stats: reqstats.RequestStats, seconds: float) -> None:
        if self.metrics is not None:
            operation = getattr(stats.info, "operation", None)
            self.metrics.observe_request(
                operation, stats.outcome, seconds, stats.sql_count, stats.sql_seconds
            )
        if self.log_requests:
            logging_setup.log_request(stats, seconds, request.method, self.slow_request_ms)


async def observe_request(request: Request, handler: Handler) -> Response:
    """Run a GraphQL request through its app's telemetry (directly when there is none)."""
    app = request.scope.get("app")
    telemetry: Telemetry | None = getattr(getattr(app, "state", None), "telemetry", None)
    if telemetry is None or not telemetry.active:
        return await handler(request)
    return await telemetry.observe(request, handler)
