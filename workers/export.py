"""Exporting stored bars to CSV, streamed by COPY (columns the file ingest reads back)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import asyncpg

from core.bar import BAR_FIELDS, BarField, columns_sql
from core.intervals import parse_timeframe


def export_columns(fields: tuple[BarField, ...] = BAR_FIELDS) -> tuple[str, ...]:
    """The CSV header: names workers.validation.ALIASES maps back to the same columns."""
    return ("ticker", "time", *(f.name for f in fields))


def export_select_sql(fields: tuple[BarField, ...] = BAR_FIELDS) -> str:
    """The select list of an export, in export_columns' order."""
    return f"s.ticker, b.ts AS time, {columns_sql('b.', fields)}"


EXPORT_COLUMNS = export_columns()
_SELECT = export_select_sql()


async def export_bars(
    conn: asyncpg.Connection,
    ticker: str,
    timeframe: str,
    output: Path | BinaryIO,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> int:
    """Write a series' bars (oldest first, times in UTC) as CSV; returns the number of rows."""
    timeframe = parse_timeframe(timeframe)
    symbol_id = await conn.fetchval(
        "SELECT id FROM symbols WHERE ticker = $1", ticker.strip().upper()
    )
    if symbol_id is None:
        raise LookupError(f"unknown ticker {ticker!r}")
    # float8 text output is shortest-exact (extra_float_digits=1), so values round-trip.
    await conn.execute("SET TIME ZONE 'UTC'")
    clauses = ["b.symbol_id = $1", "b.timeframe = $2"]
    args: list[object] = [symbol_id, timeframe]
    if start is not None:
        args.append(start)
        clauses.append(f"b.ts >= ${len(args)}")
    if end is not None:
        args.append(end)
        clauses.append(f"b.ts <= ${len(args)}")
    query = (
        f"SELECT {_SELECT} "
        "FROM bars b JOIN symbols s ON s.id = b.symbol_id "
        f"WHERE {' AND '.join(clauses)} ORDER BY b.ts"
    )
    status = await conn.copy_from_query(query, *args, output=output, format="csv", header=True)
    return int(status.split()[-1])
