"""Bulk writes of bars at COPY speed: one transaction per batch, revised bars overwrite.

Per batch, for each symbol/timeframe (a "series") in it, under an advisory lock on that
series: rows newer than the newest stored bar are appended with a plain binary COPY straight
into `bars`; older rows (revisions, re-runs) are COPYed into a staging table and merged with
one `INSERT … ON CONFLICT DO UPDATE` that leaves unchanged rows untouched. The lock makes
the append path safe with several workers writing the same series (no one can store a newer
bar between our "newest" lookup and our COPY) and keeps each series' change ids in commit
order (see workers.events). Both COPYs are binary, built from numpy arrays (workers.pgcopy).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import numpy as np
import numpy.typing as npt
import pandas as pd

from graphql_api.intervals import Interval
from workers.events import BarChange, record_changes
from workers.pgcopy import (
    BAR_COLUMNS,
    PRICE_COLUMNS,
    Series,
    copy_series,
    from_pg_us,
    split_series,
    to_pg_us,
)

__all__ = [
    "BAR_COLUMNS",
    "PRICE_COLUMNS",
    "BarChange",
    "frame_records",
    "upsert_bars",
    "upsert_columns",
    "upsert_frame",
]

_TIMEFRAME_INDEX = {i.value: n for n, i in enumerate(Interval)}
# 'bars' in the high 32 bits keeps these keys apart from other advisory locks (hashtext()
# keys such as ensure_bar_partitions' fit in 32 bits).
_LOCK_NAMESPACE = int.from_bytes(b"bars") << 32

_UPSERT_STAGED = """
WITH written AS (
    INSERT INTO bars AS b (symbol_id, timeframe, ts, open, high, low, close, volume)
    SELECT symbol_id, timeframe, ts, open, high, low, close, volume FROM _stage_bars
    ON CONFLICT (symbol_id, timeframe, ts) DO UPDATE
        SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
            close = EXCLUDED.close, volume = EXCLUDED.volume
        -- Unchanged rows are not rewritten: a re-run creates no dead tuples and no events.
        WHERE (b.open, b.high, b.low, b.close, b.volume)
              IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low,
                                EXCLUDED.close, EXCLUDED.volume)
    RETURNING symbol_id, timeframe, ts
)
SELECT symbol_id, timeframe, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS rows
FROM written GROUP BY symbol_id, timeframe
"""


def frame_records(frame: pd.DataFrame) -> list[tuple[object, ...]]:
    """Rows of a frame with the BAR_COLUMNS, as tuples (times as aware datetimes)."""
    ts = pd.DatetimeIndex(frame["ts"])
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    cols: list[Sequence[object]] = [
        frame["symbol_id"].astype(np.int64).tolist(),
        frame["timeframe"].astype(str).tolist(),
        ts.to_pydatetime().tolist(),
        *(frame[c].astype(np.float64).tolist() for c in PRICE_COLUMNS),
    ]
    return list(zip(*cols, strict=True))


async def upsert_bars(
    conn: asyncpg.Connection, records: Sequence[tuple[object, ...]], *, source: str = ""
) -> list[BarChange]:
    """Write one batch of BAR_COLUMNS tuples atomically; returns what actually changed."""
    if not records:
        return []
    frame = pd.DataFrame.from_records(records, columns=list(BAR_COLUMNS))
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return await upsert_frame(conn, frame, source=source)


async def upsert_frame(
    conn: asyncpg.Connection, frame: pd.DataFrame, *, source: str = ""
) -> list[BarChange]:
    """Write one batch (a frame with the BAR_COLUMNS) in one transaction; returns the changes.

    Rows repeating a (symbol_id, timeframe, ts) within the batch keep the last one. The
    returned changes, one per series that changed, carry their new data version (`id`).
    """
    if frame.empty:
        return []
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"bar frame lacks columns: {', '.join(missing)}")
    timeframes = frame["timeframe"].to_numpy(dtype=object)
    series: list[Series] = []
    for timeframe in sorted(set(timeframes.tolist())):
        rows = frame[timeframes == timeframe] if len(set(timeframes.tolist())) > 1 else frame
        series += split_series(
            rows["symbol_id"].to_numpy(dtype=np.int64),
            str(timeframe),
            pd.DatetimeIndex(rows["ts"]),
            [rows[c].to_numpy(dtype=np.float64) for c in PRICE_COLUMNS],
        )
    return await _write(conn, series, source)


async def upsert_columns(
    conn: asyncpg.Connection,
    symbol_ids: npt.ArrayLike,
    timeframe: str,
    ts: pd.DatetimeIndex,
    values: Sequence[npt.ArrayLike],
    *,
    source: str = "",
) -> list[BarChange]:
    """Like `upsert_frame` for one timeframe, from arrays (no frame to build on the hot path).

    `values` are the open, high, low, close and volume arrays; naive times are UTC.
    """
    return await _write(conn, split_series(symbol_ids, timeframe, ts, values), source)


async def _write(conn: asyncpg.Connection, series: list[Series], source: str) -> list[BarChange]:
    if not series:
        return []
    async with conn.transaction():
        await _lock_and_ensure_partitions(conn, series)
        # Read only now, under the locks: a statement started before them could miss bars
        # that a concurrent writer committed while we waited.
        newest = await _newest(conn, series)
        appended: list[Series] = []
        staged: list[Series] = []
        for s in series:
            last = newest.get((s.symbol_id, s.timeframe))
            after = s.ts_us > last if last is not None else np.ones(len(s.ts_us), dtype=bool)
            if after.any():
                appended.append(s.take(after))
            if not after.all():
                staged.append(s.take(~after))
        if appended:
            await copy_series(conn, "bars", appended)
        merged = {
            (s.symbol_id, s.timeframe): BarChange(
                s.symbol_id, s.timeframe, s.first, s.last, len(s.ts_us)
            )
            for s in appended
        }
        if staged:
            for c in await _merge_staged(conn, staged):
                key = (c.symbol_id, c.timeframe)
                prev = merged.get(key)
                merged[key] = c if prev is None else _union(prev, c)
        return await record_changes(conn, list(merged.values()), source=source)


def _lock_key(s: Series) -> int:
    return _LOCK_NAMESPACE | (s.symbol_id << 4) | _TIMEFRAME_INDEX[s.timeframe]


async def _lock_and_ensure_partitions(conn: asyncpg.Connection, series: list[Series]) -> None:
    first = min(int(s.ts_us[0]) for s in series)
    last = max(int(s.ts_us[-1]) for s in series)
    years = list(range(from_pg_us(first).year, from_pg_us(last).year + 1))
    # Locks in a fixed order, so two batches cannot deadlock. The partition lookup is a
    # catalog read; ensure_bar_partitions takes a lock held until commit, which would
    # serialise every concurrent batch, so it runs only when a year is missing.
    _locked, missing = await conn.fetchrow(
        """
        SELECT (SELECT count(pg_advisory_xact_lock(k))
                FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) AS keys),
               (SELECT count(*) FROM unnest($2::int[]) AS y
                WHERE to_regclass(format('public.bars_y%s', y)) IS NULL)
        """,
        sorted({_lock_key(s) for s in series}),
        years,
    )
    if missing:
        await conn.execute(
            "SELECT ensure_bar_partitions($1, $2)", from_pg_us(first), from_pg_us(last)
        )


async def _newest(conn: asyncpg.Connection, series: list[Series]) -> dict[tuple[int, str], int]:
    rows = await conn.fetch(
        """
        SELECT k.symbol_id, k.timeframe,
               (SELECT max(b.ts) FROM bars b
                WHERE b.symbol_id = k.symbol_id AND b.timeframe = k.timeframe) AS newest
        FROM unnest($1::int[], $2::text[]) AS k(symbol_id, timeframe)
        """,
        [s.symbol_id for s in series],
        [s.timeframe for s in series],
    )
    return {
        (r["symbol_id"], r["timeframe"]): to_pg_us(r["newest"])
        for r in rows
        if r["newest"] is not None
    }


async def _merge_staged(conn: asyncpg.Connection, staged: list[Series]) -> list[BarChange]:
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS _stage_bars "
        "(LIKE bars INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    await copy_series(conn, "_stage_bars", staged)
    rows = await conn.fetch(_UPSERT_STAGED)
    return [BarChange(**dict(r)) for r in rows]


def _union(a: BarChange, b: BarChange) -> BarChange:
    return BarChange(
        a.symbol_id,
        a.timeframe,
        min(a.first_ts, b.first_ts),
        max(a.last_ts, b.last_ts),
        a.rows + b.rows,
    )
