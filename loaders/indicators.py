"""Indicators for many symbols: bars with warm-up in one SQL statement, computed in one batch.

A value at a bar of [lo, hi) must equal the value computed over the symbol's whole history
(TA-Lib's recursions are seeded at the start of the input), so each key reads enough bars
before `lo`: the indicator's warm-up, or everything when it is cumulative (OBV), or the bars
since the start of the UTC day (session VWAP). Computation runs in a worker thread when the
batch is large, so other requests keep being served.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncEngine

from core.adjustments import Adjust
from core.intervals import Interval
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
    spec = get_indicator(key.name)
    params = dict(key.params)
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
    SELECT k.idx, c.t, c.o, c.h, c.l, c.c, c.v
    FROM {keys}
    CROSS JOIN LATERAL (
        SELECT coalesce(min(ts), k.floor) AS start FROM ({before}) before
    ) w
    CROSS JOIN LATERAL (
        -- Epoch microseconds: numpy takes integers at once, datetimes one by one.
        SELECT array_agg((extract(epoch FROM bucket) * 1000000)::bigint ORDER BY bucket) AS t,
               array_agg(open ORDER BY bucket) AS o, array_agg(high ORDER BY bucket) AS h,
               array_agg(low ORDER BY bucket) AS l, array_agg(close ORDER BY bucket) AS c,
               array_agg(volume ORDER BY bucket) AS v
        FROM ({inner}) q
    ) c
    """


def _nullable(values: np.ndarray) -> list[float | None]:
    return [None if v != v else v for v in values.tolist()]  # NaN is the only x != x


def _compute(
    keys: list[IndicatorKey], columns: list[dict[str, np.ndarray]], lows: list[datetime]
) -> list[IndicatorResult]:
    results = []
    for key, cols, lo in zip(keys, columns, lows, strict=True):
        spec = get_indicator(key.name)
        micros: np.ndarray = cols["time"]
        data = {**cols, "time": micros // 1000}  # VWAP takes epoch milliseconds
        outputs = spec.compute(data, dict(key.params)) if len(micros) else {}
        start = int(np.searchsorted(micros, (lo - _EPOCH) // timedelta(microseconds=1)))
        kept_times = [_EPOCH + timedelta(microseconds=us) for us in micros[start:].tolist()]
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
                    "time": np.array(r[1] or [], dtype=np.int64),
                    "open": np.array(r[2] or [], dtype=np.float64),
                    "high": np.array(r[3] or [], dtype=np.float64),
                    "low": np.array(r[4] or [], dtype=np.float64),
                    "close": np.array(r[5] or [], dtype=np.float64),
                    "volume": np.array(r[6] or [], dtype=np.float64),
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
