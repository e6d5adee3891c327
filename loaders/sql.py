"""Running one SQL statement on a pooled connection of its own (loaders run concurrently)."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import retry_dropped
from core.replicas import run_read
from core.tracing import loader_span


async def fetch(engine: AsyncEngine, sql: str, *args: Any) -> Sequence[Any]:
    """Run `sql` (with $1… parameters) and return all rows (indexable records).

    Each call checks out its own connection: loader batches of one request resolve
    concurrently, and one connection cannot serve two statements at a time. On a read
    replica that goes away mid-read, the statement runs again on the primary
    (core/replicas.py).
    """
    with loader_span() as span:  # a no-op unless tracing is on; named after our caller
        rows = await run_read(engine, lambda e: retry_dropped(lambda: _fetch(e, sql, args)))
        if span is not None:
            span.set_attribute("db.response.returned_rows", len(rows))
        return rows


async def _fetch(engine: AsyncEngine, sql: str, args: tuple[Any, ...]) -> Sequence[Any]:
    # Autocommit: a single read needs no transaction, and the BEGIN and ROLLBACK around it
    # were two of its three round trips.
    async with autocommit(engine).connect() as conn:
        result = await conn.exec_driver_sql(sql, args)
        # The driver's own records (asyncpg's, in C; indexable like tuples) rather than
        # SQLAlchemy Row objects made from them: ~1 µs a row saved, 5 ms on a 5,000-bar
        # chart request. Statement events (metrics, traces, counts) still fire.
        cursor = result.cursor
        rows = cursor.fetchall() if cursor is not None else result.all()
        result.close()
    return rows


_autocommit: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = weakref.WeakKeyDictionary()


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """`engine` without transactions: the same pool and event listeners (metrics, traces,
    statement counts), statements sent as they are."""
    shared = _autocommit.get(engine)
    if shared is None:
        shared = _autocommit[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return shared
