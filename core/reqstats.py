"""Per-request counters (SQL statements and time, cache hits) carried in a context variable.

Dependency-free on purpose: the cache, the loaders and the SQLAlchemy event hooks record into
the current request's stats without importing the metrics, logging or tracing machinery. A
context variable reaches every task a request spawns (loader batches, gathered root fields)
and SQLAlchemy's greenlets, which copy the caller's context; the stats object is shared by
reference, so increments from those tasks land in the request's totals.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

#: Slow statements kept per request for EXPLAIN (bounded: a bad request may run hundreds).
MAX_SLOW_STATEMENTS = 3


@dataclass
class RequestStats:
    """What one request did, filled in as it runs."""

    request_id: str = ""
    started: float = field(default_factory=time.perf_counter)
    sql_count: int = 0
    sql_seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_errors: int = 0
    status: int = 0
    #: "ok", "error" (executed with errors, or failed) or "rejected" (never executed).
    outcome: str = "ok"
    #: The endpoint's RequestInfo (operation, cost, principal) once the request was parsed.
    info: Any = None
    #: The tracer of the request's app when tracing is on (loader batches open spans with it).
    tracer: Any = None
    slow_statements: list[tuple[str, Any, float]] = field(default_factory=list)


CURRENT: ContextVar[RequestStats | None] = ContextVar("market_graphql_request", default=None)
#: True while the service runs statements about statements (EXPLAIN of a slow one): those
#: are neither counted nor logged as slow themselves.
INTERNAL: ContextVar[bool] = ContextVar("market_graphql_internal_sql", default=False)


def current() -> RequestStats | None:
    """The stats of the request being served, or None outside a request."""
    return CURRENT.get()


def add_cache(hits: int, misses: int) -> None:
    """Count cache lookups for the current request (a no-op outside one)."""
    stats = CURRENT.get()
    if stats is not None:
        stats.cache_hits += hits
        stats.cache_misses += misses


def add_cache_error() -> None:
    """Count a failed cache call for the current request (a no-op outside one)."""
    stats = CURRENT.get()
    if stats is not None:
        stats.cache_errors += 1


def note_request(info: Any) -> None:
    """Remember the endpoint's RequestInfo (operation, cost, principal) for the request log."""
    stats = CURRENT.get()
    if stats is not None:
        stats.info = info


def note_outcome(status: int, body: dict[str, Any] | None) -> None:
    """Classify the response: rejected (no `data`: never executed), error, or ok."""
    stats = CURRENT.get()
    if stats is None:
        return
    stats.status = status
    if status >= 500:
        stats.outcome = "error"
    elif status == 304 or body is None:
        stats.outcome = "ok"  # a 304 or a cached body (only error-free bodies are cached)
    elif "data" not in body:
        stats.outcome = "rejected"  # GraphQL over HTTP: no `data` key when execution never ran
    elif body.get("errors"):
        stats.outcome = "error"
    else:
        stats.outcome = "ok"
