"""Bulk writes of bars at COPY speed: one transaction per batch, revised bars overwrite.

Per batch, under an advisory lock on each symbol/timeframe (a "series") in it:

* rows newer than the series' newest stored bar are appended with a plain binary COPY
  straight into `bars`;
* older rows are compared with the stored bars, read back by binary COPY: missing ones are
  appended with that same COPY, unchanged ones are dropped (a re-run writes nothing), and
  changed ones replace their stored versions: each run of consecutive stored bars that all
  changed is deleted by one index range scan, then the new versions go in with that same
  COPY (measured 1.4x an `UPDATE` of the same rows and 1.7x a staging table plus
  `ON CONFLICT DO UPDATE`: a non-HOT update writes a tuple lock, the new tuple and an index
  entry per row, while a COPY writes whole pages);
* older rows of a series too sparse to read back cheaply go through a staging table and
  one `INSERT … ON CONFLICT DO UPDATE … WHERE IS DISTINCT FROM` instead.

The lock makes this safe with several workers writing the same series (no one can store a
bar between our read and our write) and keeps each series' change ids in commit order (see
core.events). Every writer of `bars` must come through here. Both COPY directions are
binary, built from and parsed into numpy arrays (workers.pgcopy), not Python tuples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import numpy as np
import numpy.typing as npt
import pandas as pd

from core.bar import BAR_FIELDS, BarField, columns_sql, upsert_set_sql
from core.events import BarChange, record_changes
from core.intervals import Interval
from workers.pgcopy import (
    BAR_COLUMNS,
    PRICE_COLUMNS,
    Series,
    copy_out_keyed_bars,
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


def upsert_staged_sql(fields: tuple[BarField, ...] = BAR_FIELDS) -> str:
    """The staging table's rows into `bars`, overwriting changed ones; returns what changed."""
    cols = columns_sql("", fields)
    return f"""
WITH written AS (
    INSERT INTO bars AS b (symbol_id, timeframe, ts, {cols})
    SELECT symbol_id, timeframe, ts, {cols} FROM _stage_bars
    ON CONFLICT (symbol_id, timeframe, ts) DO UPDATE
        SET {upsert_set_sql(fields)}
        -- Unchanged rows are not rewritten: a re-run creates no dead tuples and no events.
        WHERE ({columns_sql("b.", fields)})
              IS DISTINCT FROM ({columns_sql("EXCLUDED.", fields)})
    RETURNING symbol_id, timeframe, ts
)
SELECT symbol_id, timeframe, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS rows
FROM written GROUP BY symbol_id, timeframe
"""


_UPSERT_STAGED = upsert_staged_sql()


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

    `values` are the PRICE_COLUMNS arrays, in that order; naive times are UTC.
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
        if staged:
            # Of rows at or before the newest stored bar, those missing are appended too and
            # changed ones replace the stored ones; unchanged ones cost only a read.
            missing, changed, runs, staged = await _compare_with_stored(conn, staged)
            if changed:
                await _delete_runs(conn, runs, sum(len(s.ts_us) for s in changed))
            appended += missing + changed
        if appended:
            await copy_series(conn, "bars", _by_series(appended))
        merged: dict[tuple[int, str], BarChange] = {}
        for s in appended:
            _merge(merged, BarChange(s.symbol_id, s.timeframe, s.first, s.last, len(s.ts_us)))
        if staged:
            for c in await _merge_staged(conn, staged):
                _merge(merged, c)
        return await record_changes(conn, list(merged.values()), source=source)


def _merge(into: dict[tuple[int, str], BarChange], change: BarChange) -> None:
    key = (change.symbol_id, change.timeframe)
    prev = into.get(key)
    into[key] = change if prev is None else _union(prev, change)


def series_lock_key(symbol_id: int, timeframe: str) -> int:
    """The advisory lock a writer of one series holds until commit (see core.events)."""
    return _LOCK_NAMESPACE | (symbol_id << 4) | _TIMEFRAME_INDEX[timeframe]


def _lock_key(s: Series) -> int:
    return series_lock_key(s.symbol_id, s.timeframe)


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


def read_stored_sql(fields: tuple[BarField, ...] = BAR_FIELDS) -> str:
    """Stored bars over each series' range, keyed by run index (read back by binary COPY)."""
    return f"""
SELECT r.i, b.ts, {columns_sql("b.", fields)}
FROM unnest($1::int[], $2::int[], $3::text[], $4::timestamptz[], $5::timestamptz[])
     AS r(i, symbol_id, timeframe, lo, hi)
JOIN bars b ON b.symbol_id = r.symbol_id AND b.timeframe = r.timeframe
           AND b.ts BETWEEN r.lo AND r.hi
"""


_READ_STORED = read_stored_sql()


@dataclass
class _Runs:
    """Runs of consecutive stored bars that all changed: per run, its series and bounds."""

    symbol_ids: list[int] = field(default_factory=list)
    timeframes: list[str] = field(default_factory=list)
    lo_us: list[int] = field(default_factory=list)
    hi_us: list[int] = field(default_factory=list)


async def _compare_with_stored(
    conn: asyncpg.Connection, staged: list[Series]
) -> tuple[list[Series], list[Series], _Runs, list[Series]]:
    """Split rows into (missing, changed, runs of changed stored bars, unknown).

    Unchanged rows are dropped. Reads the stored bars over each series' time range in one
    query; a series whose rows are sparse in its range (reading it would fetch far more than
    it holds) is passed on whole as "unknown", for the upsert to sort out.
    """
    runs = _Runs()
    dense = [s for s in staged if _is_dense(s)]
    sparse = [s for s in staged if not _is_dense(s)]
    if not dense:
        return [], [], runs, sparse
    keys, ts_us, values = await copy_out_keyed_bars(
        conn,
        _READ_STORED,
        list(range(len(dense))),
        [s.symbol_id for s in dense],
        [s.timeframe for s in dense],
        [s.first for s in dense],
        [s.last for s in dense],
    )
    order = np.lexsort((ts_us, keys))
    keys, ts_us, values = keys[order], ts_us[order], values[:, order]
    bounds = np.searchsorted(keys, np.arange(len(dense) + 1))
    missing: list[Series] = []
    changed: list[Series] = []
    for i, s in enumerate(dense):
        stored_ts = ts_us[bounds[i] : bounds[i + 1]]
        stored = values[:, bounds[i] : bounds[i + 1]]
        pos = np.minimum(np.searchsorted(stored_ts, s.ts_us), max(len(stored_ts) - 1, 0))
        found = (stored_ts[pos] == s.ts_us) if len(stored_ts) else np.zeros(len(s.ts_us), bool)
        # Exact comparison, as IS DISTINCT FROM does: float8 round-trips bit for bit.
        differs = found & (stored[:, pos] != s.values).any(axis=0) if len(stored_ts) else found
        if (~found).any():
            missing.append(s.take(~found))
        if differs.any():
            changed.append(s.take(differs))
            # Stored positions of the changed bars: where they step by more than one, an
            # unchanged stored bar lies between, which a range delete must not touch.
            at = pos[differs]
            breaks = np.flatnonzero(np.diff(at) != 1)
            starts = np.concatenate([[0], breaks + 1])
            ends = np.concatenate([breaks, [len(at) - 1]])
            runs.symbol_ids += [s.symbol_id] * len(starts)
            runs.timeframes += [s.timeframe] * len(starts)
            runs.lo_us += stored_ts[at[starts]].tolist()
            runs.hi_us += stored_ts[at[ends]].tolist()
    return missing, changed, runs, sparse


def _is_dense(s: Series) -> bool:
    step_us = Interval(s.timeframe).seconds * 1_000_000
    slots = (int(s.ts_us[-1]) - int(s.ts_us[0])) // step_us + 1
    return len(s.ts_us) * 4 >= slots


_DELETE_RUNS = """
DELETE FROM {partition} AS b
USING unnest($1::int[], $2::text[], $3::bigint[], $4::bigint[]) AS r(symbol_id, timeframe, lo, hi)
WHERE b.symbol_id = r.symbol_id AND b.timeframe = r.timeframe
  AND b.ts BETWEEN timestamptz '2000-01-01 00:00:00+00' + r.lo * interval '1 microsecond'
               AND timestamptz '2000-01-01 00:00:00+00' + r.hi * interval '1 microsecond'
"""


async def _delete_runs(conn: asyncpg.Connection, runs: _Runs, expected: int) -> None:
    """Delete the stored versions of changed bars (known from the read-back, under the locks).

    One DELETE per yearly partition, straight on the partition, each run one index range
    scan. Hash and merge joins are turned off for these statements so that the plan stays a
    nested loop over the runs, whatever the size of the table (a hash join would read the
    whole partition), then restored for the rest of the transaction.
    """
    lo = np.asarray(runs.lo_us, dtype=np.int64)
    hi = np.asarray(runs.hi_us, dtype=np.int64)
    ids = np.asarray(runs.symbol_ids, dtype=np.int64)
    timeframes = np.asarray(runs.timeframes, dtype=object)
    prev = await conn.fetchrow(
        "SELECT h, m, set_config('enable_hashjoin', 'off', true), "
        "set_config('enable_mergejoin', 'off', true) FROM (SELECT "
        "current_setting('enable_hashjoin') AS h, current_setting('enable_mergejoin') AS m "
        "OFFSET 0) AS prev"
    )
    deleted = 0
    for year in range(from_pg_us(lo.min()).year, from_pg_us(hi.max()).year + 1):
        # The partitions ensure_bar_partitions makes (and _lock_and_ensure_partitions
        # checked): bars_yYYYY holds [YYYY-01-01, YYYY+1-01-01) UTC.
        begin = to_pg_us(datetime(year, 1, 1, tzinfo=UTC))
        end = to_pg_us(datetime(year + 1, 1, 1, tzinfo=UTC))
        inside = (lo < end) & (hi >= begin)
        if not inside.any():
            continue
        status = await conn.execute(
            _DELETE_RUNS.format(partition=f"bars_y{year}"),
            ids[inside].tolist(),
            timeframes[inside].tolist(),
            lo[inside].tolist(),
            hi[inside].tolist(),
        )
        deleted += int(status.split()[-1])
    await conn.execute(
        "SELECT set_config('enable_hashjoin', $1, true), set_config('enable_mergejoin', $2, true)",
        prev["h"],
        prev["m"],
    )
    if deleted != expected:
        # Only a writer that bypassed the series locks could change the stored bars between
        # our read and this delete: refuse the batch rather than lose or duplicate bars.
        raise RuntimeError(f"deleted {deleted} revised bars, expected {expected}")


def _by_series(parts: list[Series]) -> list[Series]:
    """Parts of the same series merged into one, in time order (so the COPY lays them out
    in the order range reads want)."""
    groups: dict[tuple[int, str], list[Series]] = {}
    for p in parts:
        groups.setdefault((p.symbol_id, p.timeframe), []).append(p)
    out = []
    for (symbol_id, timeframe), group in groups.items():
        if len(group) == 1:
            out.append(group[0])
            continue
        ts_us = np.concatenate([p.ts_us for p in group])
        order = np.argsort(ts_us, kind="stable")
        values = np.concatenate([p.values for p in group], axis=1)
        out.append(Series(symbol_id, timeframe, ts_us[order], values[:, order]))
    return out


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
