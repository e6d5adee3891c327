"""Bars pages, counts and chart series: one SQL statement per distinct argument set.

Every loader key carries its symbol and that symbol's own bounds; keys that share the
rest of their arguments are answered together by unnesting the per-symbol values into a
LATERAL subquery, so N symbols cost one statement, not N.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncEngine

from core.adjustments import Adjust, adjusted_columns_sql, factors_sql
from core.bar import BAR_FIELDS, BarField, columns_sql, resample_sql
from core.cache import FieldCache
from core.intervals import MAX_TS, MIN_TS, Interval
from loaders.codec import decode_page, decode_series, encode_page, encode_series
from loaders.rows import BarPage, BarRow, SeriesColumns
from loaders.sql import fetch

#: Stand-ins for an open range end (PostgreSQL's ±infinity has no Python datetime).
_ORIGIN = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"  # a Monday at midnight UTC


def bucket_sql(interval: Interval, column: str = "ts") -> str:
    """SQL for the start of the `interval` bucket holding `column` (UTC-aligned)."""
    if interval == Interval.MN1:
        return f"date_trunc('month', {column}, 'UTC')"
    if interval == Interval.W1:
        return f"date_trunc('week', {column}, 'UTC')"
    return f"date_bin(INTERVAL '{interval.seconds} seconds', {column}, {_ORIGIN})"


# --- the adjustment hook (issue 16) ---------------------------------------------------------
# Every statement below reads base rows in a subquery over `bars` inside a LATERAL per key
# `k`. Adjusted reads (core.adjustments) change only that: one more LATERAL after the keys
# (`adj`, the symbol's factors) and the row's value columns multiplied by their factor, before
# any resampling. A raw read (adjust None / False) issues the statements unchanged.


def adjust_hook(
    adjusted: bool,
    first_param: int,
    timeframe: str = "$4",
    fields: tuple[BarField, ...] = BAR_FIELDS,
    sid: str = "k.sid",
) -> tuple[str, str]:
    """(join after the keys, value columns of a base row) for a statement whose adjustment
    parameters (kinds, as-of date; see `adjust_args`) start at `$first_param`."""
    if not adjusted:
        return "", columns_sql("", fields)
    join = factors_sql(sid, timeframe, f"${first_param}::text[]", f"${first_param + 1}::date")
    # With its own leading line break, so raw statements keep their text exactly.
    return "\n" + join, adjusted_columns_sql("", fields)


def adjust_args(adjust: Adjust | None) -> list[Any]:
    """The parameters `adjust_hook`'s SQL reads (none for a raw read)."""
    if adjust is None:
        return []
    return [list(adjust.adjustment.kinds), adjust.as_of]


def bucket_rows_sql(
    base: Interval,
    interval: Interval,
    where: str,
    fields: tuple[BarField, ...] = BAR_FIELDS,
    values: str | None = None,
) -> str:
    """SELECT of (bucket, <value columns>) over base bars matching `where`: the stored rows
    themselves, or buckets resampled from them (core.bar's aggregate per column).
    `values` replaces the base rows' value columns (adjusted ones, see `adjust_hook`)."""
    if values is None:
        if base == interval:
            return f"SELECT ts AS bucket, {columns_sql('', fields)} FROM bars WHERE {where}"
        return f"""
        SELECT {bucket_sql(interval)} AS bucket,
               {resample_sql("", fields)}
        FROM bars WHERE {where}
        GROUP BY 1
    """
    if base == interval:
        return f"SELECT ts AS bucket, {values} FROM bars WHERE {where}"
    return f"""
        SELECT {bucket_sql(interval)} AS bucket,
               {resample_sql("r.", fields)}
        FROM (SELECT ts, {values} FROM bars WHERE {where}) r
        GROUP BY 1
    """


def rows_per_bucket(base: Interval, interval: Interval) -> int:
    """The most base bars one bucket can hold."""
    return max(1, -(-interval.seconds // base.seconds))


@dataclass(frozen=True, slots=True)
class BarWindow:
    """The arguments shared by the keys of one statement."""

    interval: Interval
    base: Interval
    descending: bool
    adjust: Adjust | None = None  # None: raw bars


@dataclass(frozen=True, slots=True)
class BarKey:
    """One symbol's page: bars whose (bucket) start lies in [lo, hi), walked from one end."""

    symbol_id: int
    lo: datetime
    hi: datetime
    newest_base_end: datetime  # end of the newest stored base bar: later buckets are forming
    window: BarWindow
    limit: int  # bars to return; one more is fetched to learn whether more exist
    version: int  # data version of the base series: part of the cache key


def stored_page_sql(fields: tuple[BarField, ...] = BAR_FIELDS, adjusted: bool = False) -> str:
    """Pages of stored bars; `{bounds}` and `{order}` are left for the caller to fill."""
    join, values = adjust_hook(adjusted, 6, "$4", fields)
    return f"""
SELECT k.idx, b.ts, {columns_sql("b.", fields)}
FROM unnest($1::int[], $2::timestamptz[], $3::timestamptz[], $5::int[])
     WITH ORDINALITY AS k(sid, lo, hi, lim, idx){join}
CROSS JOIN LATERAL (
    SELECT ts, {values} FROM bars
    WHERE symbol_id = k.sid AND timeframe = $4{{bounds}}
    ORDER BY ts {{order}} LIMIT k.lim
) b
"""


# Reads at most (limit + 2) buckets' worth of base rows, newest (or oldest) first, so the
# scan stops early; the bucket at the far end of what was read may be cut short, and is
# dropped when the read hit its row limit.
def resampled_page_sql(fields: tuple[BarField, ...] = BAR_FIELDS, adjusted: bool = False) -> str:
    """Pages of resampled bars; `{bucket}`, `{bounds}` and `{order}` are left to fill."""
    join, values = adjust_hook(adjusted, 6, "$4", fields)
    return f"""
SELECT k.idx, g.bucket, {columns_sql("g.", fields)}, g.fetched
FROM unnest($1::int[], $2::timestamptz[], $3::timestamptz[], $5::int[])
     WITH ORDINALITY AS k(sid, lo, hi, lim, idx){join}
CROSS JOIN LATERAL (
    SELECT r.bucket, {resample_sql("r.", fields)}, sum(count(*)) OVER () AS fetched
    FROM (
        SELECT {{bucket}} AS bucket, ts, {values} FROM bars
        WHERE symbol_id = k.sid AND timeframe = $4{{bounds}}
        ORDER BY ts {{order}} LIMIT k.lim
    ) r
    GROUP BY r.bucket
) g
ORDER BY k.idx, g.bucket {{order}}
"""


_STORED = stored_page_sql()
_RESAMPLED = resampled_page_sql()
_STORED_ADJUSTED = stored_page_sql(adjusted=True)
_RESAMPLED_ADJUSTED = resampled_page_sql(adjusted=True)
_N = len(BAR_FIELDS)
_FETCHED = 2 + _N  # index of `fetched` in a resampled page row
# Bound once: an attribute lookup per row cost ~10% of building a 5,000-bar page.
_make_row = BarRow._make


def _bounds(keys: Sequence[BarKey]) -> str:
    """The time conditions a page statement needs: only the bounds some key really sets.

    With both `ts >= k.lo` and `ts < k.hi` on parameters, PostgreSQL estimates the pair at
    0.5% of a symbol's rows, and then prefers reading every row of the symbol and sorting
    them to walking the index from one end (measured: 18.6 ms against 2.8 ms for 50
    symbols x 2,000 bars, and it grows with the history). An unbounded end (no `from`, no
    cursor on that side) is left out, so the usual pages (newest first, or paging on from a
    cursor) walk the index and stop after `limit` rows.
    """
    out = ""
    bounded_lo = any(k.lo > MIN_TS for k in keys)
    bounded_hi = any(k.hi < MAX_TS for k in keys)
    if bounded_lo:
        out += " AND ts >= k.lo"
    if bounded_hi:
        out += " AND ts < k.hi"
    if bounded_lo and bounded_hi:
        # Both ends set (a window, or `from` and a cursor): the estimate above stays tiny, so
        # the group's outer bounds go in as constants too, widened to whole UTC days so that
        # statements repeat. The planner then prunes partitions and estimates from the
        # histogram (measured: 85 ms reading and sorting a day of 50 symbols against 3 ms).
        # The constants come from datetimes, never from client text.
        lo = min(k.lo for k in keys).astimezone(UTC)
        hi = max(k.hi for k in keys).astimezone(UTC)
        day_lo = lo.replace(hour=0, minute=0, second=0, microsecond=0)
        day_hi = hi.replace(hour=0, minute=0, second=0, microsecond=0)
        if day_hi < hi:
            day_hi += timedelta(days=1)
        out += (
            f" AND ts >= '{day_lo.isoformat()}'::timestamptz"
            f" AND ts < '{day_hi.isoformat()}'::timestamptz"
        )
    return out


K = TypeVar("K")
V = TypeVar("V")


async def cached(
    cache: FieldCache,
    keys: list[K],
    cache_keys: list[str],
    ttls: list[float],
    load: Callable[[list[K]], Awaitable[list[V]]],
    encode: Callable[[V], bytes],
    decode: Callable[[bytes], V],
) -> list[V]:
    """Read-through for a batch: hits from the cache, misses loaded together and stored.

    Values computed here are returned as computed, not decoded back from their bytes.
    """
    fresh: dict[int, V] = {}

    async def compute(indexes: list[int]) -> list[bytes]:
        values = await load([keys[i] for i in indexes])
        fresh.update(zip(indexes, values, strict=True))
        return [encode(v) for v in values]

    raw = await cache.read_through(cache_keys, compute, ttls)
    return [fresh[i] if i in fresh else decode(b) for i, b in enumerate(raw)]


class BarPageLoader(DataLoader[BarKey, BarPage]):
    """Pages of bars for many symbols: one statement per BarWindow (for the cache misses)."""

    def __init__(self, engine: AsyncEngine, cache: FieldCache | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.field_cache = cache

    async def batch_load_fn(self, keys: list[BarKey]) -> list[BarPage]:
        cache = self.field_cache
        if cache is None:
            return await self._load_all(keys)
        return await cached(
            cache,
            keys,
            [_page_key(cache, k) for k in keys],
            [_page_ttl(k) for k in keys],
            self._load_all,
            encode_page,
            decode_page,
        )

    async def _load_all(self, keys: list[BarKey]) -> list[BarPage]:
        groups: dict[BarWindow, list[int]] = defaultdict(list)
        for i, key in enumerate(keys):
            groups[key.window].append(i)
        pages: list[BarPage | None] = [None] * len(keys)
        for window, idxs in groups.items():
            group_keys = [keys[i] for i in idxs]
            for i, page in zip(idxs, await self._load(window, group_keys), strict=True):
                pages[i] = page
        return pages  # type: ignore[return-value]

    async def _load(self, w: BarWindow, keys: list[BarKey]) -> list[BarPage]:
        order = "DESC" if w.descending else "ASC"
        args: list[Any] = [
            [k.symbol_id for k in keys],
            [k.lo for k in keys],
            [k.hi for k in keys],
            w.base.value,
        ]
        per: list[list[Any]] = [[] for _ in keys]
        extra = adjust_args(w.adjust)
        if w.base == w.interval:
            limits = [k.limit + 1 for k in keys]
            stored = _STORED if w.adjust is None else _STORED_ADJUSTED
            sql = stored.format(order=order, bounds=_bounds(keys))
            rows = await fetch(self.engine, sql, *args, limits, *extra)
            for r in rows:
                per[r[0] - 1].append(r)
            return [
                BarPage(
                    [_make_row((r[1], *r[2:_FETCHED], True)) for r in rs[: k.limit]],
                    len(rs) > k.limit,
                )
                for k, rs in zip(keys, per, strict=True)
            ]
        ratio = rows_per_bucket(w.base, w.interval)
        row_limits = [(k.limit + 2) * ratio for k in keys]
        resampled = _RESAMPLED if w.adjust is None else _RESAMPLED_ADJUSTED
        sql = resampled.format(order=order, bucket=bucket_sql(w.interval), bounds=_bounds(keys))
        rows = await fetch(self.engine, sql, *args, row_limits, *extra)
        for r in rows:
            per[r[0] - 1].append(r)
        pages = []
        for key, row_limit, rs in zip(keys, row_limits, per, strict=True):
            if rs and rs[0][_FETCHED] >= row_limit:
                rs = rs[:-1]  # the far bucket may be missing base bars beyond the limit
            bars = [
                _make_row((*r[1:_FETCHED], w.interval.bucket_end(r[1]) <= key.newest_base_end))
                for r in rs[: key.limit]
            ]
            pages.append(BarPage(bars, len(rs) > key.limit))
        return pages


@dataclass(frozen=True, slots=True)
class CountKey:
    """How many bars (buckets) one symbol has in [lo, hi)."""

    symbol_id: int
    base: Interval
    interval: Interval
    lo: datetime
    hi: datetime
    version: int


class BarCountLoader(DataLoader[CountKey, int]):
    """Bar counts for many symbols: one statement per (base, interval)."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self.engine = engine

    async def batch_load_fn(self, keys: list[CountKey]) -> list[int]:
        groups: dict[tuple[Interval, Interval], list[int]] = defaultdict(list)
        for i, key in enumerate(keys):
            groups[(key.base, key.interval)].append(i)
        counts = [0] * len(keys)
        for (base, interval), idxs in groups.items():
            what = "count(*)" if base == interval else f"count(DISTINCT {bucket_sql(interval)})"
            sql = f"""
            SELECT k.idx, c.n
            FROM unnest($1::int[], $2::timestamptz[], $3::timestamptz[])
                 WITH ORDINALITY AS k(sid, lo, hi, idx)
            CROSS JOIN LATERAL (
                SELECT {what} AS n FROM bars
                WHERE symbol_id = k.sid AND timeframe = $4 AND ts >= k.lo AND ts < k.hi
            ) c
            """
            group = [keys[i] for i in idxs]
            rows = await fetch(
                self.engine,
                sql,
                [k.symbol_id for k in group],
                [k.lo for k in group],
                [k.hi for k in group],
                base.value,
            )
            for r in rows:
                counts[idxs[r[0] - 1]] = int(r[1])
        return counts


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One symbol's bars in [lo, hi) at `interval`, as columns."""

    symbol_id: int
    base: Interval
    interval: Interval
    lo: datetime
    hi: datetime
    newest_base_end: datetime
    version: int
    adjust: Adjust | None = None  # None: raw bars


class SeriesLoader(DataLoader[SeriesKey, SeriesColumns]):
    """Chart series for many symbols: one statement per (base, interval); columns built in SQL."""

    def __init__(self, engine: AsyncEngine, cache: FieldCache | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.field_cache = cache

    async def batch_load_fn(self, keys: list[SeriesKey]) -> list[SeriesColumns]:
        cache = self.field_cache
        if cache is None:
            return await self._load_all(keys)
        cache_keys = [
            cache.key(
                "series",
                k.symbol_id,
                k.base.value,
                k.version,
                k.interval.value,
                _us(k.lo),
                _us(k.hi),
                *_adjust_part(k.adjust),
            )
            for k in keys
        ]
        return await cached(
            cache,
            keys,
            cache_keys,
            [LONG_TTL] * len(keys),
            self._load_all,
            encode_series,
            decode_series,
        )

    async def _load_all(self, keys: list[SeriesKey]) -> list[SeriesColumns]:
        groups: dict[tuple[Interval, Interval, Adjust | None], list[int]] = defaultdict(list)
        for i, key in enumerate(keys):
            groups[(key.base, key.interval, key.adjust)].append(i)
        out: list[SeriesColumns | None] = [None] * len(keys)
        for (base, interval, adjust), idxs in groups.items():
            group = [keys[i] for i in idxs]
            join, values = adjust_hook(adjust is not None, 5)
            inner = bucket_rows_sql(
                base,
                interval,
                "symbol_id = k.sid AND timeframe = $4 AND ts >= k.lo AND ts < k.hi",
                values=values if adjust is not None else None,
            )
            sql = series_sql(inner, join=join)
            # One sort (or an index-ordered scan) feeding plain aggregates, which keep their
            # input order: `array_agg(x ORDER BY bucket)` sorted each of the six columns again
            # (244 ms against 90 ms for 100,000 bars).
            rows = await fetch(
                self.engine,
                sql,
                [k.symbol_id for k in group],
                [k.lo for k in group],
                [k.hi for k in group],
                base.value,
                *adjust_args(adjust),
            )
            for r in rows:
                key = group[r[0] - 1]
                ts = r[1] or []
                if base == interval:
                    closed = [True] * len(ts)
                else:
                    closed = [interval.bucket_end(t) <= key.newest_base_end for t in ts[-2:]]
                    closed = [True] * (len(ts) - len(closed)) + closed
                # The value columns in core.bar's order, which SeriesColumns' fields follow
                # (tests/foundation/test_bar.py checks the two agree).
                out[idxs[r[0] - 1]] = SeriesColumns(  # type: ignore[call-arg]
                    interval, ts, *(v or [] for v in r[2:_FETCHED]), closed
                )
        return out  # type: ignore[return-value]


def series_sql(inner: str, fields: tuple[BarField, ...] = BAR_FIELDS, join: str = "") -> str:
    """Chart series of the rows `inner` selects (bucket and value columns), one array each;
    `join` is `adjust_hook`'s, for adjusted rows."""
    arrays = ", ".join(f"array_agg({f.name}) AS {f.name}" for f in fields)
    return f"""
            SELECT k.idx, c.t, {columns_sql("c.", fields)}
            FROM unnest($1::int[], $2::timestamptz[], $3::timestamptz[])
                 WITH ORDINALITY AS k(sid, lo, hi, idx){join}
            CROSS JOIN LATERAL (
                SELECT array_agg(bucket) AS t, {arrays}
                FROM ({inner} ORDER BY bucket) q
            ) c
            """


#: Cache lifetimes: keys carry the data version, so these only bound memory, except that
#: pages touching the newest bars turn over faster (they are what changes).
LONG_TTL = 24 * 3600.0
SHORT_TTL = 60.0


def _us(ts: datetime) -> int:
    return int(ts.timestamp()) * 1_000_000 + ts.microsecond


def _adjust_part(adjust: Adjust | None) -> tuple[str, ...]:
    """The adjustment's part of a cache key: nothing for raw bars (their keys stay as they
    were). The actions' own version is the data version already in the key: ingesting an
    action records a change of the series it adjusts (workers.actions)."""
    return () if adjust is None else (adjust.cache_part,)


def _page_key(cache: FieldCache, k: BarKey) -> str:
    w = k.window
    return cache.key(
        "bars",
        k.symbol_id,
        w.base.value,
        k.version,
        w.interval.value,
        _us(k.lo),
        _us(k.hi),
        k.limit,
        int(w.descending),
        *_adjust_part(w.adjust),
    )


def _page_ttl(k: BarKey) -> float:
    return SHORT_TTL if k.hi >= k.newest_base_end else LONG_TTL


@dataclass(frozen=True, slots=True)
class BucketCountKey:
    """Distinct `interval` buckets of one symbol's base bars in [lo, hi), counted up to `cap`."""

    symbol_id: int
    base: Interval
    interval: Interval
    lo: datetime
    hi: datetime
    cap: int
    version: int


class BucketCountLoader(DataLoader[BucketCountKey, int]):
    """Capped bucket counts for many symbols: one statement per (base, interval, cap).

    The scan walks base bars in time order and stops after `cap` bucket changes, so it reads
    at most `cap` buckets' worth of rows whatever the range holds.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self.engine = engine

    async def batch_load_fn(self, keys: list[BucketCountKey]) -> list[int]:
        groups: dict[tuple[Interval, Interval, int], list[int]] = defaultdict(list)
        for i, key in enumerate(keys):
            groups[(key.base, key.interval, key.cap)].append(i)
        counts = [0] * len(keys)
        for (base, interval, cap), idxs in groups.items():
            bucket = bucket_sql(interval)
            sql = f"""
            SELECT k.idx, (
                SELECT count(*) FROM (
                    SELECT 1 FROM (
                        SELECT {bucket} AS b, lag({bucket}) OVER (ORDER BY ts) AS pb
                        FROM bars
                        WHERE symbol_id = k.sid AND timeframe = $4 AND ts >= k.lo AND ts < k.hi
                        ORDER BY ts
                    ) changes
                    WHERE b IS DISTINCT FROM pb
                    LIMIT $5
                ) capped
            )
            FROM unnest($1::int[], $2::timestamptz[], $3::timestamptz[])
                 WITH ORDINALITY AS k(sid, lo, hi, idx)
            """
            group = [keys[i] for i in idxs]
            rows = await fetch(
                self.engine,
                sql,
                [k.symbol_id for k in group],
                [k.lo for k in group],
                [k.hi for k in group],
                base.value,
                cap,
            )
            for r in rows:
                counts[idxs[r[0] - 1]] = int(r[1])
        return counts
