"""Capacity inputs measured on this machine: bytes per bar on disk, and what partitions cost.

    .venv/bin/python benchmarks/capacity.py                  # 1,000,000 bars, ~1-2 min
    .venv/bin/python benchmarks/capacity.py --rows 200000    # quicker

On a database of its own (created on the server at `--admin-url`, dropped at the end),
migrated to head:

1. Writes `--rows` one-minute bars over `--symbols` tickers through the real write path
   (`BarWriter`, batches of 100,000 rows, one connection: what one worker does), and reports
   rows/s and, per partition of `bars`, heap (with TOAST and maps) and index bytes per bar.
2. Builds two empty copies of `bars` partitioned over the same 30 years, by year (30
   partitions) and by month (360), and times for each, median of `--repeat` runs:
   - the planning time (EXPLAIN SUMMARY) of a one-day page of one series, and of the
     newest-first page with no lower bound (the default `bars(first: 100)`: only the upper
     bound prunes, so every older partition stays in the plan);
   - the round trip of the same one-day page as an asyncpg prepared statement (parameters,
     the way the API runs it: custom plans first, then PostgreSQL may switch to a generic
     plan with run-time pruning).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import db
from core.settings import load_settings
from workers.writer import BarWriter

BATCH = 100_000


def _frame(rows: int, symbols: int) -> pd.DataFrame:
    per = rows // symbols
    rng = np.random.default_rng(7)
    start = datetime(2024, 1, 2, tzinfo=UTC)
    parts = []
    for s in range(symbols):
        close = 100 + np.cumsum(rng.normal(0, 0.05, per))
        parts.append(
            pd.DataFrame(
                {
                    "ticker": f"SYM{s:03d}",
                    "ts": pd.date_range(start, periods=per, freq="min"),
                    "open": close,
                    "high": close + 0.1,
                    "low": close - 0.1,
                    "close": close,
                    "volume": rng.integers(1, 10_000, per).astype(float),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


async def bytes_per_bar(dsn: str, rows: int, symbols: int) -> None:
    frame = _frame(rows, symbols)
    conn = await asyncpg.connect(dsn)
    try:
        writer = BarWriter(conn, "M1", source="capacity")
        started = time.perf_counter()
        for lo in range(0, len(frame), BATCH):
            await writer.write(frame.iloc[lo : lo + BATCH])
        seconds = time.perf_counter() - started
        print(
            f"ingest: {len(frame):,} bars in {seconds:.2f} s = {len(frame) / seconds:,.0f} rows/s "
            "(one connection, batches of 100,000)"
        )
        await conn.execute("VACUUM ANALYZE bars")
        parts = await conn.fetch(
            """
            SELECT c.relname, c.reltuples::bigint AS rows,
                   pg_table_size(c.oid) AS heap, pg_indexes_size(c.oid) AS idx
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'bars'::regclass ORDER BY c.relname
            """
        )
        total_rows = total_heap = total_idx = 0
        for p in parts:
            if p["rows"] <= 0:
                continue
            total_rows += p["rows"]
            total_heap += p["heap"]
            total_idx += p["idx"]
            print(
                f"  {p['relname']}: {p['rows']:,} bars, heap {p['heap'] / p['rows']:.1f} B/bar, "
                f"index {p['idx'] / p['rows']:.1f} B/bar"
            )
        print(
            f"bytes per bar: heap {total_heap / total_rows:.1f} + index "
            f"{total_idx / total_rows:.1f} = {(total_heap + total_idx) / total_rows:.1f} "
            f"(over {total_rows:,} bars)"
        )
    finally:
        await conn.close()


_TABLE = """
CREATE TABLE {name} (
    symbol_id integer NOT NULL, timeframe varchar(4) NOT NULL, ts timestamptz NOT NULL,
    open double precision NOT NULL, high double precision NOT NULL,
    low double precision NOT NULL, close double precision NOT NULL,
    volume double precision NOT NULL,
    PRIMARY KEY (symbol_id, timeframe, ts)
) PARTITION BY RANGE (ts)
"""


async def partitions(dsn: str, repeat: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for name, months in (("plan_yearly", 12), ("plan_monthly", 1)):
            await conn.execute(_TABLE.format(name=name))
            start = datetime(2000, 1, 1, tzinfo=UTC)
            count = 0
            while start.year < 2030:
                month = start.month - 1 + months
                end = start.replace(year=start.year + month // 12, month=month % 12 + 1)
                await conn.execute(
                    f"CREATE TABLE {name}_{count} PARTITION OF {name} "
                    f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                )
                start, count = end, count + 1
            await conn.execute(f"ANALYZE {name}")
            day = "ts >= '2024-03-04T00:00:00Z' AND ts < '2024-03-05T00:00:00Z'"
            queries = {
                "one-day page": f"SELECT * FROM {name} WHERE symbol_id = 1 AND timeframe = 'M1' "
                f"AND {day} ORDER BY ts DESC LIMIT 100",
                "newest page, no lower bound": f"SELECT * FROM {name} WHERE symbol_id = 1 "
                "AND timeframe = 'M1' AND ts < '2024-03-05T00:00:00Z' ORDER BY ts DESC LIMIT 100",
            }
            for label, sql in queries.items():
                times = []
                for _ in range(repeat):
                    plan = await conn.fetchval(f"EXPLAIN (SUMMARY, FORMAT JSON) {sql}")
                    data = plan if isinstance(plan, list) else __import__("json").loads(plan)
                    times.append(data[0]["Planning Time"])
                print(f"{count:>4} partitions, {label}: planning {statistics.median(times):.3f} ms")
            stmt = await conn.prepare(
                f"SELECT * FROM {name} WHERE symbol_id = $1 AND timeframe = $2 AND ts >= $3 "
                "AND ts < $4 ORDER BY ts DESC LIMIT 100"
            )
            lo = datetime(2024, 3, 4, tzinfo=UTC)
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                await stmt.fetch(1, "M1", lo, lo + timedelta(days=1))
                times.append((time.perf_counter() - started) * 1000)
            print(
                f"{count:>4} partitions, one-day page, prepared: round trip "
                f"{statistics.median(times):.3f} ms (median of {repeat})"
            )
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    name = f"mg_capacity_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(args.admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        base = args.admin_url.rsplit("/", 1)[0]
        settings = load_settings(database_url=f"{base}/{name}", redis_url=None)
        db.upgrade(settings)
        asyncio.run(bytes_per_bar(settings.asyncpg_dsn, args.rows, args.symbols))
        asyncio.run(partitions(settings.asyncpg_dsn, args.repeat))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
