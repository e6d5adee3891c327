"""Running one SQL statement on a pooled connection of its own (loaders run concurrently)."""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from typing import Any

import asyncpg
import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine

from core import reqstats
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


async def fetch_row(engine: AsyncEngine, sql: str, *args: Any) -> Any:
    """The first row of `sql` (None when there is none), run on a pooled connection's driver.

    For one statement that is a whole request (graphql_api/compiled.py): SQLAlchemy's
    execution path around a statement (a Connection, a cursor, a result) cost ~250 us of CPU
    per call, half of such a request's own Python work. The statement events still fire,
    so metrics, traces, slow-statement logs and statement counts see it; a dead pooled
    connection is invalidated and the statement runs once more on a new one; on a replica
    that goes away the read moves to the primary (core/replicas.py).
    """
    return await run_read(engine, lambda e: _driver_row(e, sql, args))


class _Statement:
    """The execution context the statement events carry (telemetry notes its start on it)."""


#: Errors of a connection the server dropped: the statement never ran.
_DROPPED = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, OSError)


async def _driver_row(engine: AsyncEngine, sql: str, args: tuple[Any, ...]) -> Any:
    dispatch = engine.sync_engine.dispatch
    for attempt in range(2):
        raw = await engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None
            context = _Statement()
            dispatch.before_cursor_execute(None, None, sql, args, context, False)
            try:
                row = await driver.fetchrow(sql, *args)
            except _DROPPED as exc:
                # As SQLAlchemy does on a disconnect: every connection of this one's age
                # goes (the server that dropped one has usually dropped them all).
                engine.sync_engine.pool._invalidate(raw, exc)
                if attempt:
                    raise
                continue
            dispatch.after_cursor_execute(None, None, sql, args, context, False)
            return row
        finally:
            raw.close()
    raise AssertionError("unreachable")


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


#: Start of PostgreSQL's binary timestamps (2000-01-01 UTC) in Unix microseconds.
_PG_EPOCH_US = 946_684_800_000_000
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00"


async def fetch_columns(
    engine: AsyncEngine, sql: str, *args: Any, kinds: str
) -> list[np.ndarray] | None:
    """Run `sql` and return its result as one numpy array per column, or None when a row does
    not have the layout asked for (a NULL, another type).

    `kinds` names each selected column's type: "i" int8, "t" timestamptz (datetime64[us],
    UTC), "f" float8. The rows come by binary COPY and are read with one numpy view: no
    Python object per value (100,000 bars: ~80 ms against ~200 ms for the same rows as
    records). COPY takes no parameters, so asyncpg writes them into the statement as
    literals, quoted by the server (`Connection.copy_from_query`).
    """
    with loader_span() as span:
        data = await run_read(engine, lambda e: _copy(e, sql, args))
        columns = parse_binary_copy(data, kinds)
        if span is not None and columns is not None:
            span.set_attribute("db.response.returned_rows", len(columns[0]) if columns else 0)
        return columns


async def _copy(engine: AsyncEngine, sql: str, args: tuple[Any, ...]) -> bytes:
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        started = time.perf_counter()
        await driver.copy_from_query(sql, *args, output=sink, format="binary")
        # On the driver's connection SQLAlchemy's statement events do not fire: the request's
        # own counters (its log line) are kept here; the statement metrics do not see it.
        stats = reqstats.current()
        if stats is not None:
            stats.sql_count += 1
            stats.sql_seconds += time.perf_counter() - started
    return b"".join(chunks)


_TYPES = {"i": ">i8", "t": ">i8", "f": ">f8"}


def parse_binary_copy(data: bytes, kinds: str) -> list[np.ndarray] | None:
    """The columns of a binary COPY whose every field is 8 bytes wide (see fetch_columns)."""
    if not data.startswith(_COPY_HEADER) or not data.endswith(b"\xff\xff"):
        return None
    (extension,) = np.frombuffer(data, ">i4", 1, 15)
    start = 19 + int(extension)
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i, kind in enumerate(kinds):
        fields += [(f"l{i}", ">i4"), (f"v{i}", _TYPES[kind])]
    row = np.dtype(fields)
    body = len(data) - 2 - start
    if body % row.itemsize:
        return None
    rows = np.frombuffer(data, row, body // row.itemsize, start)
    if not (rows["n"] == len(kinds)).all():
        return None
    if any(not (rows[f"l{i}"] == 8).all() for i in range(len(kinds))):
        return None  # a NULL (length -1) or a wider type: not this layout
    out = []
    for i, kind in enumerate(kinds):
        values = rows[f"v{i}"]
        if kind == "t":
            out.append((values.astype(np.int64) + _PG_EPOCH_US).view("datetime64[us]"))
        else:
            out.append(values.astype(np.int64 if kind == "i" else np.float64))
    return out
