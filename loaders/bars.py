"""Bars pages, counts and chart series: one SQL statement per distinct argument set.

Every loader key carries its symbol and that symbol's own bounds; keys that share the
rest of their arguments are answered together by unnesting the per-symbol values into a
LATERAL subquery, so N symbols cost one statement, not N.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncEngine

from core.adjustments import Adjust, factors_sql
from core.bar import BAR_FIELDS, BarField, columns_sql, resample_sql
from core.cache import FieldCache
from core.calendars import sessions
from core.intervals import MAX_TS, MIN_TS, Interval
from loaders.buckets import (
    NO_SPAN,
    SPAN_COLUMNS,
    Bucketing,
    Span,
    bucket_sql,
    rows_per_bucket,
    source_sql,
    span_args,
    span_types,
)
from loaders.codec import decode_page, decode_series, encode_page, encode_series
from loaders.columns import Column
from loaders.rows import BarPage, BarRow, SeriesColumns
from loaders.sql import fetch, fetch_columns

__all__ = ["bucket_sql", "rows_per_bucket"]  # re-exported for the live reads and indicators


def bucket_rows_sql(
    base: Interval, interval: Interval, where: str, fields: tuple[BarField, ...] = BAR_FIELDS
) -> str:
    """SELECT of (bucket, <value columns>) over base bars matching `where`: the stored rows
    themselves, or buckets resampled from them (core.bar's aggregate per column)."""
    if base == interval:
        return f"SELECT ts AS bucket, {columns_sql('', fields)} FROM bars WHERE {where}"
    return f"""
        SELECT {bucket_sql(interval)} AS bucket,
               {resample_sql("", fields)}
        FROM bars WHERE {where}
        GROUP BY 1
    """


def grouped_sql(
    b: Bucketing,
    bounds: str,
    fields: tuple[BarField, ...] = BAR_FIELDS,
    timeframe: str = "$4",
    adjusted: bool = False,
) -> str:
    """SELECT of (bucket, <value columns>) of key k: stored rows, or resampled buckets."""
    src = source_sql(b, bounds, fields=fields, timeframe=timeframe, adjusted=adjusted)
    if b.base == b.interval:
        return f"SELECT bucket, {columns_sql('', fields)} FROM ({src}) r"
    return f"SELECT r.bucket, {resample_sql('r.', fields)} FROM ({src}) r GROUP BY r.bucket"


def bucket_end(b: Bucketing, span: Span, start: datetime) -> datetime:
    """End (exclusive) of the bucket starting at `start`: session-aware where aligned."""
    if b.aligned:
        return sessions(span.calendar).bucket_end(b.interval, b.kind, start)
    return b.interval.bucket_end(start)


def keys_sql(
    columns: str,
    types: str,
    b: Bucketing,
    first_extra: int,
    adjusted: bool = False,
    timeframe: str = "$4",
) -> str:
    """`unnest(...) WITH ORDINALITY AS k(...)` of a batch's key arrays, with the span arrays
    ($first_extra.., when the statement reads the calendar) and then the adjustment's factors
    (`adj`, core.adjustments; its two values follow the spans'): see `extra_args`."""
    if b.needs_calendar:
        types += ", " + span_types(first_extra)
        columns += ", " + SPAN_COLUMNS
        first_extra += 4
    out = f"unnest({types}) WITH ORDINALITY AS k({columns}, idx)"
    if adjusted:
        out += "\n" + factors_sql(
            "k.sid", timeframe, f"${first_extra}::text[]", f"${first_extra + 1}::date"
        )
    return out


def extra_args(b: Bucketing, spans: list[Span], adjust: Adjust | None) -> list[Any]:
    """The values `keys_sql`'s extra parameters read, in their order."""
    out: list[Any] = span_args(spans) if b.needs_calendar else []
    if adjust is not None:
        out += [list(adjust.adjustment.kinds), adjust.as_of]
    return out


@dataclass(frozen=True, slots=True)
class BarWindow:
    """The arguments shared by the keys of one statement."""

    interval: Interval
    base: Interval
    descending: bool
    bucketing: Bucketing | None = None  # None: UTC grid, no session filter
    adjust: Adjust | None = None  # None: raw bars (core.adjustments)

    @property
    def rule(self) -> Bucketing:
        """How this window's statement buckets and filters."""
        return self.bucketing or Bucketing(self.base, self.interval)


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
    span: Span = NO_SPAN  # the symbol's calendar (read when the window's bucketing needs it)


def page_sql(w: BarWindow, bounds: str, fields: tuple[BarField, ...] = BAR_FIELDS) -> str:
    """One statement for pages of `w` over a batch of keys."""
    b = w.rule
    order = "DESC" if w.descending else "ASC"
    adjusted = w.adjust is not None
    keys = keys_sql(
        "sid, lo, hi, lim",
        "$1::int[], $2::timestamptz[], $3::timestamptz[], $5::int[]",
        b,
        6,
        adjusted,
    )
    src = source_sql(b, bounds, order, "k.lim", fields, adjusted=adjusted)
    if b.base == b.interval:
        return f"""
SELECT k.idx, b.ts, {columns_sql("b.", fields)}
FROM {keys}
CROSS JOIN LATERAL (
    {src}
) b
"""
    # Reads at most (limit + 2) buckets' worth of base rows, newest (or oldest) first, so the
    # scan stops early; the bucket at the far end of what was read may be cut short, and is
    # dropped when the read hit its row limit.
    return f"""
SELECT k.idx, g.bucket, {columns_sql("g.", fields)}, g.fetched
FROM {keys}
CROSS JOIN LATERAL (
    SELECT r.bucket, {resample_sql("r.", fields)}, sum(count(*)) OVER () AS fetched
    FROM (
        {src}
    ) r
    GROUP BY r.bucket
) g
ORDER BY k.idx, g.bucket {order}
"""


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
        if not w.rule.needs_calendar:
            return await self._read(w, keys, [k.span for k in keys])
        # The statement builds each symbol's trading hours over its span: read first over
        # the days the page can plausibly need (walking from its start), and again over the
        # whole span only for pages that came back short (the data thinner than assumed).
        narrowed = [_narrow(w, k) for k in keys]
        pages = await self._read(w, keys, narrowed)
        short = [
            i
            for i, (k, span, page) in enumerate(zip(keys, narrowed, pages, strict=True))
            if span != k.span and not page.has_more
        ]
        if short:
            again = await self._read(w, [keys[i] for i in short], [keys[i].span for i in short])
            for i, page in zip(short, again, strict=True):
                pages[i] = page
        return pages

    async def _read(self, w: BarWindow, keys: list[BarKey], spans: list[Span]) -> list[BarPage]:
        args: list[Any] = [
            [k.symbol_id for k in keys],
            [k.lo for k in keys],
            [k.hi for k in keys],
            w.base.value,
        ]
        extra = extra_args(w.rule, spans, w.adjust)
        per: list[list[Any]] = [[] for _ in keys]
        sql = page_sql(w, _bounds(keys))
        if w.base == w.interval:
            limits = [k.limit + 1 for k in keys]
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
        rows = await fetch(self.engine, sql, *args, row_limits, *extra)
        for r in rows:
            per[r[0] - 1].append(r)
        pages = []
        rule = w.rule
        for key, row_limit, rs in zip(keys, row_limits, per, strict=True):
            if rs and rs[0][_FETCHED] >= row_limit:
                rs = rs[:-1]  # the far bucket may be missing base bars beyond the limit
            bars = [
                _make_row((*r[1:_FETCHED], bucket_end(rule, key.span, r[1]) <= key.newest_base_end))
                for r in rs[: key.limit]
            ]
            pages.append(BarPage(bars, len(rs) > key.limit))
        return pages


#: Base rows a trading day is assumed to hold at least, when a page's calendar span is
#: narrowed to the days it can need (`_narrow`); a page that finds fewer is read again.
_ROWS_PER_DAY = 50


def _narrow(w: BarWindow, k: BarKey) -> Span:
    """`k`'s span cut to the days a full page can need, from the end its walk starts at."""
    rows = (
        k.limit + 1 if w.base == w.interval else (k.limit + 2) * rows_per_bucket(w.base, w.interval)
    )
    days = timedelta(days=7 + rows // _ROWS_PER_DAY)
    span, one = k.span, timedelta(days=1)
    if w.descending:
        start = span.dhi if k.hi >= MAX_TS else min(span.dhi, k.hi.date() + one)
        return replace(span, dlo=max(span.dlo, start - days), dhi=start)
    start = span.dlo if k.lo <= MIN_TS else max(span.dlo, k.lo.date() - one)
    return replace(span, dlo=start, dhi=min(span.dhi, start + days))


@dataclass(frozen=True, slots=True)
class CountKey:
    """How many bars (buckets) one symbol has in [lo, hi)."""

    symbol_id: int
    base: Interval
    interval: Interval
    lo: datetime
    hi: datetime
    version: int
    bucketing: Bucketing | None = None
    span: Span = NO_SPAN

    @property
    def rule(self) -> Bucketing:
        """How the counted buckets are formed."""
        return self.bucketing or Bucketing(self.base, self.interval)


class BarCountLoader(DataLoader[CountKey, int]):
    """Bar counts for many symbols: one statement per bucketing rule."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self.engine = engine

    async def batch_load_fn(self, keys: list[CountKey]) -> list[int]:
        groups: dict[Bucketing, list[int]] = defaultdict(list)
        for i, key in enumerate(keys):
            groups[key.rule].append(i)
        counts = [0] * len(keys)
        for rule, idxs in groups.items():
            what = "count(*)" if rule.base == rule.interval else "count(DISTINCT bucket)"
            keys_from = keys_sql(
                "sid, lo, hi", "$1::int[], $2::timestamptz[], $3::timestamptz[]", rule, 5
            )
            src = source_sql(rule, " AND ts >= k.lo AND ts < k.hi")
            sql = f"""
            SELECT k.idx, c.n
            FROM {keys_from}
            CROSS JOIN LATERAL (SELECT {what} AS n FROM ({src}) r) c
            """
            group = [keys[i] for i in idxs]
            spans = span_args([k.span for k in group]) if rule.needs_calendar else []
            rows = await fetch(
                self.engine,
                sql,
                [k.symbol_id for k in group],
                [k.lo for k in group],
                [k.hi for k in group],
                rule.base.value,
                *spans,
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
    bucketing: Bucketing | None = None
    span: Span = NO_SPAN
    adjust: Adjust | None = None  # None: raw bars
    #: Most buckets to read (the oldest), 0 for all: a series read to learn whether it holds
    #: more than `maxPoints` (graphql_api/bar_queries.py `plan_series`) stops one past it.
    cap: int = 0

    @property
    def rule(self) -> Bucketing:
        """How the series' buckets are formed."""
        return self.bucketing or Bucketing(self.base, self.interval)


def rule_tag(rule: Bucketing) -> str:
    """The part of a cache key that names a bucketing rule ("" for the UTC grid)."""
    if not rule.needs_calendar:
        return ""
    return f"{rule.kind.value[0]}{int(rule.aligned)}"


class SeriesLoader(DataLoader[SeriesKey, SeriesColumns]):
    """Chart series for many symbols: one statement per bucketing rule; columns built in SQL."""

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
                *((rule_tag(k.rule),) if k.rule.needs_calendar else ()),
                *_adjust_part(k.adjust),
                *((f"cap{k.cap}",) if k.cap else ()),
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
        groups: dict[tuple[Bucketing, Adjust | None, int], list[int]] = defaultdict(list)
        for i, key in enumerate(keys):
            groups[(key.rule, key.adjust, key.cap)].append(i)
        out: list[SeriesColumns | None] = [None] * len(keys)
        for (rule, adjust, _), idxs in groups.items():
            group = [keys[i] for i in idxs]
            loaded = await self._read_columns(rule, adjust, group)
            if loaded is None:
                loaded = await self._read_lists(rule, adjust, group)
            for i, cols in zip(idxs, loaded, strict=True):
                out[i] = cols
        return out  # type: ignore[return-value]

    def _statement_args(
        self, rule: Bucketing, adjust: Adjust | None, group: list[SeriesKey]
    ) -> tuple[str, str, list[Any]]:
        """The inner SELECT, the keys' FROM clause and the parameters of a group's statement."""
        adjusted = adjust is not None
        inner = grouped_sql(rule, " AND ts >= k.lo AND ts < k.hi", adjusted=adjusted)
        inner += " ORDER BY bucket"
        cap = group[0].cap  # one per group (`_load_all`); an int of ours, never client text
        if cap:
            inner += f" LIMIT {int(cap)}"
        keys_from = keys_sql(
            "sid, lo, hi", "$1::int[], $2::timestamptz[], $3::timestamptz[]", rule, 5, adjusted
        )
        args = [
            [k.symbol_id for k in group],
            [k.lo for k in group],
            [k.hi for k in group],
            rule.base.value,
            *extra_args(rule, [k.span for k in group], adjust),
        ]
        return inner, keys_from, args

    async def _read_columns(
        self, rule: Bucketing, adjust: Adjust | None, group: list[SeriesKey]
    ) -> list[SeriesColumns] | None:
        """The group's series as numpy columns (loaders.columns), read by binary COPY as
        rows; None when a row does not fit that layout (then `_read_lists` answers)."""
        inner, keys_from, args = self._statement_args(rule, adjust, group)
        values = ", ".join(f"c.{f.name}::float8" for f in BAR_FIELDS)
        # Rows leave each key's LATERAL in bucket order and the keys in their order; both
        # are checked below rather than paid for with a sort of every row.
        sql = f"""
            SELECT k.idx::int8, c.bucket::timestamptz, {values}
            FROM {keys_from}
            CROSS JOIN LATERAL ({inner}) c
            """
        columns = await fetch_columns(self.engine, sql, *args, kinds="it" + "f" * _N)
        if columns is None:
            return None
        idx, ts, *values_ = columns
        step, later = np.diff(idx), np.diff(ts) > np.timedelta64(0)
        if not ((step >= 0).all() and (later | (step > 0)).all()):
            order = np.lexsort((ts, idx))
            idx, ts, values_ = idx[order], ts[order], [v[order] for v in values_]
        cuts = np.searchsorted(idx, np.arange(1, len(group) + 2))
        out = []
        for n, key in enumerate(group):
            lo, hi = int(cuts[n]), int(cuts[n + 1])
            times = Column(ts[lo:hi])
            closed = np.ones(hi - lo, dtype=np.bool_)
            if rule.base != rule.interval:
                for j in range(max(0, hi - lo - 2), hi - lo):
                    closed[j] = bucket_end(rule, key.span, times.at(j)) <= key.newest_base_end
            # The value columns in core.bar's order, which SeriesColumns' fields follow
            # (tests/foundation/test_bar.py checks the two agree).
            out.append(
                SeriesColumns(  # type: ignore[call-arg]
                    rule.interval, times, *(Column(v[lo:hi]) for v in values_), Column(closed)
                )
            )
        return out

    async def _read_lists(
        self, rule: Bucketing, adjust: Adjust | None, group: list[SeriesKey]
    ) -> list[SeriesColumns]:
        """The group's series as Python lists, aggregated into arrays by PostgreSQL."""
        inner, keys_from, args = self._statement_args(rule, adjust, group)
        sql = series_sql(inner, keys=keys_from)
        # One sort (or an index-ordered scan) feeding plain aggregates, which keep their
        # input order: `array_agg(x ORDER BY bucket)` sorted each of the six columns again
        # (244 ms against 90 ms for 100,000 bars).
        rows = await fetch(self.engine, sql, *args)
        out: list[SeriesColumns | None] = [None] * len(group)
        for r in rows:
            key = group[r[0] - 1]
            ts = r[1] or []
            if rule.base == rule.interval:
                closed = [True] * len(ts)
            else:
                closed = [bucket_end(rule, key.span, t) <= key.newest_base_end for t in ts[-2:]]
                closed = [True] * (len(ts) - len(closed)) + closed
            # The value columns in core.bar's order, which SeriesColumns' fields follow
            # (tests/foundation/test_bar.py checks the two agree).
            out[r[0] - 1] = SeriesColumns(  # type: ignore[call-arg]
                rule.interval, ts, *(v or [] for v in r[2:_FETCHED]), closed
            )
        return out  # type: ignore[return-value]


def series_sql(
    inner: str,
    fields: tuple[BarField, ...] = BAR_FIELDS,
    keys: str = "unnest($1::int[], $2::timestamptz[], $3::timestamptz[])\n"
    "                 WITH ORDINALITY AS k(sid, lo, hi, idx)",
) -> str:
    """Chart series of the rows `inner` selects (bucket and value columns, in bucket order),
    one array each."""
    arrays = ", ".join(f"array_agg({f.name}) AS {f.name}" for f in fields)
    return f"""
            SELECT k.idx, c.t, {columns_sql("c.", fields)}
            FROM {keys}
            CROSS JOIN LATERAL (
                SELECT array_agg(bucket) AS t, {arrays}
                FROM ({inner}) q
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
        *((rule_tag(w.rule),) if w.rule.needs_calendar else ()),
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
    bucketing: Bucketing | None = None
    span: Span = NO_SPAN

    @property
    def rule(self) -> Bucketing:
        """How the counted buckets are formed."""
        return self.bucketing or Bucketing(self.base, self.interval)


class BucketCountLoader(DataLoader[BucketCountKey, int]):
    """Capped bucket counts for many symbols: one statement per (bucketing rule, cap).

    The scan walks base bars in time order and stops after `cap` bucket changes, so it reads
    at most `cap` buckets' worth of rows whatever the range holds.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self.engine = engine

    async def batch_load_fn(self, keys: list[BucketCountKey]) -> list[int]:
        groups: dict[tuple[Bucketing, int], list[int]] = defaultdict(list)
        for i, key in enumerate(keys):
            groups[(key.rule, key.cap)].append(i)
        counts = [0] * len(keys)
        for (rule, cap), idxs in groups.items():
            keys_from = keys_sql(
                "sid, lo, hi", "$1::int[], $2::timestamptz[], $3::timestamptz[]", rule, 6
            )
            if rule.base == rule.interval:
                # Stored bars: every row is its own bucket, so rows are counted as the index
                # yields them (100,000 bars: ~55 ms against ~140 ms for the window below,
                # on a busy machine).
                src = source_sql(rule, " AND ts >= k.lo AND ts < k.hi")
                sql = f"""
            SELECT k.idx, (SELECT count(*) FROM (SELECT 1 FROM ({src}) src LIMIT $5) capped)
            FROM {keys_from}
            """
            else:
                sql = _bucket_changes_sql(rule, keys_from)
            group = [keys[i] for i in idxs]
            spans = span_args([k.span for k in group]) if rule.needs_calendar else []
            rows = await fetch(
                self.engine,
                sql,
                [k.symbol_id for k in group],
                [k.lo for k in group],
                [k.hi for k in group],
                rule.base.value,
                cap,
                *spans,
            )
            for r in rows:
                counts[idxs[r[0] - 1]] = int(r[1])
        return counts


def _bucket_changes_sql(rule: Bucketing, keys_from: str) -> str:
    """Buckets counted as changes of bucket along the rows in time order, up to $5."""
    src = source_sql(rule, " AND ts >= k.lo AND ts < k.hi", "ASC")
    return f"""
            SELECT k.idx, (
                SELECT count(*) FROM (
                    SELECT 1 FROM (
                        SELECT bucket AS b, lag(bucket) OVER (ORDER BY ts) AS pb
                        FROM ({src}) src
                        ORDER BY ts
                    ) changes
                    WHERE b IS DISTINCT FROM pb
                    LIMIT $5
                ) capped
            )
            FROM {keys_from}
            """
