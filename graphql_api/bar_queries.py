"""Turning a symbol's bars/series arguments into loader keys: ranges, cursors, direction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.adjustments import Adjust
from core.errors import BadUserInput
from core.intervals import MAX_TS, MIN_TS, Interval, after_bucket, align_up
from core.settings import Settings
from graphql_api.cursors import parse_bar_cursor
from graphql_api.relay import PageArgs
from graphql_api.validation import time_range
from loaders.bars import BarKey, BarWindow, BucketCountKey, CountKey, SeriesKey
from loaders.rows import StoredSeries, SymbolRow

#: Interval ladder the series walks up when a range holds too many points.
LADDER = tuple(Interval)


def stored_end(series: StoredSeries) -> datetime:
    """End of the newest stored bar of a series."""
    return series.timeframe.bucket_end(series.last_ts)


def bucket_range(
    interval: Interval, stored: bool, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """Base-row bounds [lo, hi) of the buckets whose start lies in [start, end)."""
    lo = MIN_TS if start is None else (start if stored else align_up(interval, start))
    hi = MAX_TS if end is None else (end if stored else align_up(interval, end))
    return lo, hi


@dataclass(frozen=True)
class BarPlan:
    """A bars page to load: the key, and whether the loaded rows must be reversed."""

    key: BarKey
    count_key: CountKey
    reverse: bool


def plan_bars(
    symbol: SymbolRow,
    interval: Interval,
    start: datetime | None,
    end: datetime | None,
    page: PageArgs,
    newest_first: bool,
    adjust: Adjust | None = None,
) -> BarPlan | None:
    """The loader key for one symbol's page, or None when nothing stored can serve it."""
    time_range(start, end)
    # Cursors are checked even where nothing is stored: another symbol's cursor is refused
    # the same way whether or not this one has bars at the interval.
    after, before = (
        None if cursor is None else parse_bar_cursor(cursor, symbol.id, interval)
        for cursor in (page.after, page.before)
    )
    base = symbol.base_for(interval)
    if base is None:
        return None
    stored = base.timeframe == interval
    lo, hi = bucket_range(interval, stored, start, end)
    count_key = CountKey(symbol.id, base.timeframe, interval, lo, hi, base.version)
    # "after" means further along the list; in a newest-first list that is older.
    older_than, newer_than = (after, before) if newest_first else (before, after)
    if older_than is not None:
        hi = min(hi, older_than)
    if newer_than is not None:
        lo = max(lo, after_bucket(interval, stored, newer_than))
    descending = newest_first != page.from_end
    window = BarWindow(interval, base.timeframe, descending, adjust)
    return BarPlan(
        BarKey(symbol.id, lo, hi, stored_end(base), window, page.size, base.version),
        count_key,
        reverse=page.from_end,
    )


def _bucket_estimate(interval: Interval, lo: datetime, hi: datetime) -> int:
    """An upper bound on the number of buckets between lo and hi."""
    span = (hi - lo).total_seconds()
    if interval == Interval.MN1:
        last = hi - timedelta(microseconds=1)  # hi is exclusive
        return (last.year - lo.year) * 12 + last.month - lo.month + 1
    return int(span // interval.seconds) + 2


async def plan_series(
    symbol: SymbolRow,
    interval: Interval,
    start: datetime | None,
    end: datetime | None,
    max_points: int,
    settings: Settings,
    count: Callable[[BucketCountKey], Awaitable[int]],
    adjust: Adjust | None = None,
) -> SeriesKey | None:
    """The loader key for one symbol's series at the finest interval giving <= max_points.

    The calendar span bounds the number of buckets from above (it counts nights, weekends
    and gaps too); only where that bound is too large are the buckets counted in SQL, with
    the count capped at max_points + 1 so the scan stops early.
    """
    time_range(start, end)
    if max_points < 1 or max_points > settings.max_series_points:
        raise BadUserInput(
            f"`maxPoints` must be between 1 and {settings.max_series_points}, got {max_points}"
        )
    base = symbol.base_for(interval)
    if base is None:
        return None
    newest_end = stored_end(base)
    span_lo = max(start or base.first_ts, base.first_ts)
    span_hi = min(end or newest_end, newest_end)
    if (
        interval.is_intraday
        and start is not None
        and end is not None
        and end - start > timedelta(days=settings.max_intraday_range_days)
    ):
        raise BadUserInput(
            f"a range over {settings.max_intraday_range_days} days needs an interval of D1 or "
            "more (or let `maxPoints` pick one by leaving `from`/`to` closer together)"
        )
    chosen = None
    for candidate in LADDER[LADDER.index(interval) :]:
        if not base.timeframe.divides(candidate):
            continue
        if span_hi <= span_lo or _bucket_estimate(candidate, span_lo, span_hi) <= max_points:
            chosen = candidate
            break
        lo, hi = bucket_range(candidate, base.timeframe == candidate, start, end)
        key = BucketCountKey(
            symbol.id, base.timeframe, candidate, lo, hi, max_points + 1, base.version
        )
        if await count(key) <= max_points:
            chosen = candidate
            break
    if chosen is None:
        raise BadUserInput(
            f"the range holds more than {max_points} monthly bars: raise `maxPoints` or narrow "
            "`from`/`to`"
        )
    stored = base.timeframe == chosen
    lo, hi = bucket_range(chosen, stored, start, end)
    return SeriesKey(symbol.id, base.timeframe, chosen, lo, hi, newest_end, base.version, adjust)


def plan_indicators(
    symbol: SymbolRow,
    interval: Interval,
    start: datetime | None,
    end: datetime | None,
    settings: Settings,
) -> tuple[StoredSeries | None, datetime, datetime]:
    """The base series and bucket bounds for indicators; refuses ranges with too many bars."""
    time_range(start, end)
    base = symbol.base_for(interval)
    if base is None:
        return None, MIN_TS, MAX_TS
    lo, hi = bucket_range(interval, base.timeframe == interval, start, end)
    newest_end = stored_end(base)
    span_lo, span_hi = max(lo, base.first_ts), min(hi, newest_end)
    limit = settings.max_series_points
    if span_hi > span_lo and _bucket_estimate(interval, span_lo, span_hi) > limit:
        raise BadUserInput(
            f"the range can hold more than {limit} {interval.value} bars: narrow `from`/`to` "
            "or use a coarser interval"
        )
    return base, lo, hi
