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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncEngine

from core.adjustments import Adjust
from core.bar import BAR_FIELDS, BarField, bar_field
from core.intervals import MAX_TS, Interval
from indicators import get_indicator
from loaders.bars import extra_args, grouped_sql, keys_sql
from loaders.buckets import NO_SPAN, Bucketing, Span, rows_per_bucket, source_sql
from loaders.columns import TimeColumn, float_column
from loaders.sql import fetch

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: PostgreSQL's timestamp epoch (2000-01-01 UTC) in Unix microseconds.
_PG_EPOCH_US = 946_684_800_000_000

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


def _binary(field: BarField) -> str:
    return f"string_agg(float8send(coalesce({field.name}, 'NaN')), ''::bytea) AS v_{field.name}"


def _fields(keys: Iterable[IndicatorKey]) -> tuple[BarField, ...]:
    """The value columns the keys' indicators read, in table order (close for times alone:
    a statement reads at least one)."""
    names: set[str] = set()
    for key in keys:
        if key.name != TIME_ONLY:
            names.update(get_indicator(key.name).inputs)
    return tuple(f for f in BAR_FIELDS if f.name in names) or (bar_field("close"),)


def _times(raw: bytes | None) -> np.ndarray:
    """Epoch microseconds from a column of timestamptz_send values."""
    return np.frombuffer(raw or b"", dtype=">i8").astype(np.int64) + _PG_EPOCH_US


def _floats(raw: bytes | None) -> np.ndarray:
    """A float64 array (native order, writable) from a column of float8send values."""
    return np.frombuffer(raw or b"", dtype=">f8").astype(np.float64)


def _sql(rule: Bucketing, adjusted: bool = False, fields: tuple[BarField, ...] = BAR_FIELDS) -> str:
    """Per key: its index, the warm-up rows found, then the times and each of `fields` (one
    bytea each)."""
    bounds = " AND ts >= w.start AND ts < k.hi"
    inner = grouped_sql(rule, bounds, fields, timeframe="$6", adjusted=adjusted)
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
    SELECT k.idx, w.n, c.*
    FROM {keys}
    CROSS JOIN LATERAL (
        -- n: base rows found before the floor (fewer than asked: the history starts there).
        SELECT coalesce(min(ts), k.floor) AS start, count(*) AS n FROM ({before}) before
    ) w
    CROSS JOIN LATERAL (
        -- Each column as one bytea of big-endian binary values (numpy reads it at once:
        -- float8[] arrays became a Python float per value in the driver, then numpy
        -- arrays), the times as PostgreSQL's own microseconds since 2000-01-01 (`extract(epoch
        -- ...)` is a numeric and cost ~5 ms for 8,000 bars). One sort feeding plain
        -- aggregates, which keep their input order (as loaders/bars.py's series_sql):
        -- `agg(x ORDER BY bucket)` sorts each of the six columns again. string_agg skips
        -- NULLs, hence NaN for a missing value (what numpy made of a NULL in the array).
        -- Only the columns the batch's indicators read.
        SELECT string_agg(timestamptz_send(bucket), ''::bytea) AS t,
               {", ".join(_binary(f) for f in fields)}
        FROM ({inner} ORDER BY bucket) q
    ) c
    """


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
    """Aware UTC datetimes from epoch microseconds, exactly: numpy makes the timedeltas in C
    and one addition each makes the datetimes (~4x faster than pandas' to_pydatetime)."""
    return TimeColumn(map(_EPOCH.__add__, micros.astype("m8[us]").tolist()))


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
        trimmed = {name: float_column(arr[start:]) for name, arr in outputs.items()}
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
    columns = {"time": _times(r[2] if r is not None else None)}
    for i, field in enumerate(BAR_FIELDS, start=3):
        columns[field.name] = _floats(r[i] if r is not None else None)
    found = int(r[1]) if r is not None else 0
    version = int(r[3 + len(BAR_FIELDS)] or 0) if r is not None else 0
    last_ts = r[4 + len(BAR_FIELDS)] if r is not None else None
    newest_end = rule.base.bucket_end(last_ts) if last_ts is not None else None
    return History(columns, floor, warm == ALL_HISTORY or found < warm, version, newest_end)


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
            fields = _fields(k for k in keys if (k.rule, k.adjust) == (rule, adjust))
            rows = await fetch(
                self.engine,
                _sql(rule, adjust is not None, fields),
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
                bars[rk] = {"time": _times(r[2])}
                for field, raw in zip(fields, r[3:], strict=True):
                    bars[rk][field.name] = _floats(raw)
        columns = [
            bars[(k.symbol_id, k.base, k.interval, k.lo, k.hi, k.rule, k.span, k.adjust)]
            for k in keys
        ]
        lows = [k.lo for k in keys]
        points = sum(len(c["time"]) for c in columns)
        if points > THREAD_THRESHOLD:
            return await asyncio.to_thread(_compute, keys, columns, lows)
        return _compute(keys, columns, lows)
