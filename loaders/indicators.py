"""Indicators for many symbols: bars with warm-up in one SQL statement, computed in one batch.

A value at a bar of [lo, hi) must equal the value computed over the symbol's whole history
(TA-Lib's recursions are seeded at the start of the input), so each key reads enough bars
before `lo`: the indicator's warm-up, or everything when it is cumulative (OBV), or the bars
since the start of the UTC day (session VWAP), or the bars since its anchor time (anchored
VWAP). Computation runs in a worker thread when the
batch is large, so other requests keep being served.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncEngine

from core.adjustments import Adjust
from core.intervals import MAX_TS, Interval
from indicators import get_indicator
from loaders.bars import extra_args, grouped_sql, keys_sql
from loaders.buckets import NO_SPAN, Bucketing, Span, rows_per_bucket, source_sql
from loaders.sql import fetch

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Above this many input points in one batch, compute off the event loop.
THREAD_THRESHOLD = 20_000
#: LIMIT standing for "all of the history before lo".
ALL_HISTORY = 2**31 - 1

ParamsKey = tuple[tuple[str, Any], ...]

#: IndicatorKey.name of a request for the bar times alone (`IndicatorSet.time`).
TIME_ONLY = ""


@dataclass(frozen=True, slots=True)
class IndicatorKey:
    """One indicator over one symbol's bars at `interval` whose start lies in [lo, hi)."""

    symbol_id: int
    base: Interval
    interval: Interval
    lo: datetime
    hi: datetime
    version: int
    name: str
    params: ParamsKey
    #: Significant digits to round the values to (None: full precision).
    digits: int | None = None
    bucketing: Bucketing | None = None  # None: the UTC grid, no session filter
    span: Span = NO_SPAN
    adjust: Adjust | None = None  # None: raw bars; else warm-up and values on adjusted bars

    @property
    def rule(self) -> Bucketing:
        """How the indicator's bars are bucketed and filtered."""
        return self.bucketing or Bucketing(self.base, self.interval)


@dataclass(frozen=True, slots=True)
class IndicatorResult:
    """Times of the bars in range, and each output with None where it is undefined."""

    time: list[datetime]
    outputs: dict[str, list[float | None]]
    valid_from: datetime | None


def _warm_rows(key: IndicatorKey) -> tuple[int, datetime]:
    """(base rows to read before the returned floor, floor) for one key."""
    if key.name == TIME_ONLY:
        return 0, key.lo
    spec = get_indicator(key.name)
    params = dict(key.params)
    anchor = spec.anchor(params)
    if anchor is not None:
        return 0, min(anchor, key.lo)
    if spec.warmup_to_session_start(params):
        day = key.lo.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return 0, min(day, key.lo)
    bars = spec.warmup_bars(params)
    if bars is None:
        return ALL_HISTORY, key.lo
    # One more bucket than needed: the oldest bucket read may be cut short.
    return (bars + 1) * rows_per_bucket(key.base, key.interval), key.lo


def _sql(rule: Bucketing, adjusted: bool = False) -> str:
    inner = grouped_sql(rule, " AND ts >= w.start AND ts < k.hi", timeframe="$6", adjusted=adjusted)
    # The warm-up counts the rows the rule keeps (a session filter drops the others).
    before = source_sql(rule, " AND ts < k.floor", "DESC", "k.warm", timeframe="$6")
    keys = keys_sql(
        "sid, lo, floor, hi, warm",
        "$1::int[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[], $5::int[]",
        rule,
        7,
        adjusted,
        "$6",
    )
    return f"""
    SELECT k.idx, c.t, c.o, c.h, c.l, c.c, c.v, w.n
    FROM {keys}
    CROSS JOIN LATERAL (
        -- n: base rows found before the floor (fewer than asked: the history starts there).
        SELECT coalesce(min(ts), k.floor) AS start, count(*) AS n FROM ({before}) before
    ) w
    CROSS JOIN LATERAL (
        -- Epoch microseconds: numpy takes integers at once, datetimes one by one. One sort
        -- feeding plain aggregates, which keep their input order (as loaders/bars.py's
        -- series_sql): `array_agg(x ORDER BY bucket)` sorted each of the six columns again.
        SELECT array_agg((extract(epoch FROM bucket) * 1000000)::bigint) AS t,
               array_agg(open) AS o, array_agg(high) AS h, array_agg(low) AS l,
               array_agg(close) AS c, array_agg(volume) AS v
        FROM ({inner} ORDER BY bucket) q
    ) c
    """


def _nullable(values: np.ndarray) -> list[float | None]:
    """The values as a list with None for NaN (patched in place: most values are numbers)."""
    out: list[float | None] = values.tolist()
    for i in np.flatnonzero(np.isnan(values)).tolist():
        out[i] = None
    return out


def round_significant(values: np.ndarray, digits: int) -> np.ndarray:
    """Values rounded to `digits` (1-15) significant digits, as the nearest doubles to those
    decimals (an integer divided by a power of ten), so JSON prints them that short."""
    out = values.copy()
    ok = np.isfinite(values) & (values != 0.0)
    x = values[ok]
    decimals = digits - 1 - np.floor(np.log10(np.abs(x))).astype(np.int64)
    power = 10.0 ** np.abs(decimals)
    up = decimals >= 0
    out[ok] = np.where(up, np.round(x * power) / power, np.round(x / power) * power)
    return out


def _datetimes(micros: np.ndarray) -> list[datetime]:
    """Aware UTC datetimes from epoch microseconds (pandas converts in C, exactly)."""
    times: list[datetime] = pd.to_datetime(micros, unit="us", utc=True).to_pydatetime().tolist()
    return times


def _compute(
    keys: list[IndicatorKey], columns: list[dict[str, np.ndarray]], lows: list[datetime]
) -> list[IndicatorResult]:
    results = []
    # Keys over the same bars share their columns, hence one list of times (built once).
    times: dict[tuple[int, datetime], list[datetime]] = {}
    for key, cols, lo in zip(keys, columns, lows, strict=True):
        micros: np.ndarray = cols["time"]
        start = int(np.searchsorted(micros, (lo - _EPOCH) // timedelta(microseconds=1)))
        kept_times = times.get((id(cols), lo))
        if kept_times is None:
            kept_times = _datetimes(micros[start:])
            times[(id(cols), lo)] = kept_times
        if key.name == TIME_ONLY:
            results.append(IndicatorResult(kept_times, {}, None))
            continue
        spec = get_indicator(key.name)
        data = {**cols, "time": micros // 1000}  # VWAP takes epoch milliseconds
        outputs = spec.compute(data, dict(key.params)) if len(micros) else {}
        if key.digits is not None:
            outputs = {name: round_significant(arr, key.digits) for name, arr in outputs.items()}
        trimmed = {name: _nullable(arr[start:]) for name, arr in outputs.items()}
        first_valid = None
        if trimmed:
            defined = np.ones(len(kept_times), dtype=bool)
            for arr in outputs.values():
                defined &= ~np.isnan(arr[start:])
            hits = np.flatnonzero(defined)
            first_valid = kept_times[int(hits[0])] if len(hits) else None
        if not trimmed:
            trimmed = {name: [] for name in spec.outputs}
        results.append(IndicatorResult(kept_times, trimmed, first_valid))
    return results


@dataclass(frozen=True, slots=True)
class History:
    """The bars of one series at one interval that a set of indicators needs at and after
    `lo` (read with the warm-up rule of `_warm_rows`), and the series' state before the read."""

    columns: dict[str, np.ndarray]  # "time" in epoch microseconds, then OHLCV; oldest first
    floor: datetime  # every bar from here on is in `columns`
    complete: bool  # nothing the rule keeps is stored before the first bar read
    version: int  # newest change id of the base series in the snapshot read (0: none)
    newest_end: datetime | None  # end of the newest stored base bar in that snapshot


def _history_sql(rule: Bucketing, adjusted: bool) -> str:
    """`_sql` for one key, with the series' version and newest stored bar from the same
    snapshot (one statement)."""
    return f"""
    SELECT q.*,
           (SELECT id FROM bar_changes WHERE symbol_id = ($1::int[])[1] AND timeframe = $6
            ORDER BY id DESC LIMIT 1),
           (SELECT last_ts FROM bar_series WHERE symbol_id = ($1::int[])[1] AND timeframe = $6)
    FROM ({_sql(rule, adjusted)}) q
    """


async def read_history(
    engine: AsyncEngine,
    symbol_id: int,
    rule: Bucketing,
    span: Span,
    adjust: Adjust | None,
    lo: datetime,
    indicators: list[tuple[str, ParamsKey]],
) -> History:
    """Bars from the warm-up before `lo` to the newest, for every indicator listed: the read
    `Symbol.indicators` makes for a range starting at `lo` (live indicators start from it),
    with the data version of the snapshot it saw."""
    warm, floor = 0, lo
    for name, params in indicators:
        key = IndicatorKey(symbol_id, rule.base, rule.interval, lo, MAX_TS, 0, name, params)
        w, f = _warm_rows(key)
        warm, floor = max(warm, w), min(floor, f)
    rows = await fetch(
        engine,
        _history_sql(rule, adjust is not None),
        [symbol_id],
        [lo],
        [floor],
        [MAX_TS],
        [warm],
        rule.base.value,
        *extra_args(rule, [span], adjust),
    )
    r = rows[0] if rows else None
    columns = {
        name: np.array((r[i] if r is not None else None) or [], dtype=dtype)
        for i, (name, dtype) in enumerate(_COLUMNS, start=1)
    }
    found = int(r[7]) if r is not None else 0
    version = int(r[8] or 0) if r is not None else 0
    last_ts = r[9] if r is not None else None
    newest_end = rule.base.bucket_end(last_ts) if last_ts is not None else None
    return History(columns, floor, warm == ALL_HISTORY or found < warm, version, newest_end)


#: The columns of `_sql`'s rows (after the key index) and their numpy types.
_COLUMNS = (
    ("time", np.int64),
    ("open", np.float64),
    ("high", np.float64),
    ("low", np.float64),
    ("close", np.float64),
    ("volume", np.float64),
)


class IndicatorLoader(DataLoader[IndicatorKey, IndicatorResult]):
    """Indicators for many symbols: one statement per (base, interval), one compute batch."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self.engine = engine

    async def batch_load_fn(self, keys: list[IndicatorKey]) -> list[IndicatorResult]:
        # Bars are read once per (symbol, range) with the longest warm-up its indicators need.
        reads: dict[tuple[Any, ...], tuple[int, datetime]] = {}
        for key in keys:
            rk = (
                key.symbol_id,
                key.base,
                key.interval,
                key.lo,
                key.hi,
                key.rule,
                key.span,
                key.adjust,
            )
            warm, floor = _warm_rows(key)
            old = reads.get(rk)
            reads[rk] = (max(warm, old[0]), min(floor, old[1])) if old else (warm, floor)
        groups: dict[tuple[Bucketing, Adjust | None], list[tuple[Any, ...]]] = defaultdict(list)
        for rk in reads:
            groups[(rk[5], rk[7])].append(rk)
        bars: dict[tuple[Any, ...], dict[str, np.ndarray]] = {}
        for (rule, adjust), rks in groups.items():
            spans = extra_args(rule, [rk[6] for rk in rks], adjust)
            rows = await fetch(
                self.engine,
                _sql(rule, adjust is not None),
                [rk[0] for rk in rks],
                [rk[3] for rk in rks],
                [reads[rk][1] for rk in rks],
                [rk[4] for rk in rks],
                [reads[rk][0] for rk in rks],
                rule.base.value,
                *spans,
            )
            for r in rows:
                rk = rks[r[0] - 1]
                bars[rk] = {
                    name: np.array(r[i] or [], dtype=dtype)
                    for i, (name, dtype) in enumerate(_COLUMNS, start=1)
                }
        columns = [
            bars[(k.symbol_id, k.base, k.interval, k.lo, k.hi, k.rule, k.span, k.adjust)]
            for k in keys
        ]
        lows = [k.lo for k in keys]
        points = sum(len(c["time"]) for c in columns)
        if points > THREAD_THRESHOLD:
            return await asyncio.to_thread(_compute, keys, columns, lows)
        return _compute(keys, columns, lows)
