"""Running one SQL statement on a pooled connection of its own (loaders run concurrently)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from core.replicas import run_read
from core.tracing import loader_span


async def fetch(
    engine: AsyncEngine, sql: str, *args: Any, generic_plan: bool = False
) -> Sequence[Any]:
    """Run `sql` (with $1… parameters) and return all rows (indexable records).

    Each call checks out its own connection: loader batches of one request resolve
    concurrently, and one connection cannot serve two statements at a time. On a read
    replica that goes away mid-read, the statement runs again on the primary
    (core/replicas.py).

    `generic_plan`: plan the statement once per connection (PostgreSQL's generic plan of the
    prepared statement) instead of for every execution. For a statement over a batch of keys
    given as arrays (`unnest`), PostgreSQL estimates the generic plan for ten keys and the
    custom one for the actual few, so it never picks the generic plan by itself, and plans
    again each time; over the partitions of `bars` that planning cost as much as running
    the statement (~6 of ~12 ms for the 8,000 daily bars of benchmarks/indicators_e2e.py).
    Only for statements whose partitions are pruned at run time anyway (their bounds come
    from the keys, per row), so the generic plan is the custom one.
    """
    with loader_span() as span:  # a no-op unless tracing is on; named after our caller
        rows = await run_read(engine, lambda e: _fetch(e, sql, args, generic_plan))
        if span is not None:
            span.set_attribute("db.response.returned_rows", len(rows))
        return rows


async def _fetch(
    engine: AsyncEngine, sql: str, args: tuple[Any, ...], generic_plan: bool = False
) -> Sequence[Any]:
    async with engine.connect() as conn:
        if generic_plan:
            # For this transaction only (the connection goes back to the pool rolled back).
            await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        result = await conn.exec_driver_sql(sql, args)
        # The driver's own records (asyncpg's, in C; indexable like tuples) rather than
        # SQLAlchemy Row objects made from them: ~1 µs a row saved, 5 ms on a 5,000-bar
        # chart request. Statement events (metrics, traces, counts) still fire.
        cursor = result.cursor
        rows = cursor.fetchall() if cursor is not None else result.all()
        result.close()
    return rows
