"""Turning a symbol's bars/series arguments into loader keys: ranges, cursors, direction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.adjustments import Adjust
from core.calendars import (
    ALWAYS_OPEN,
    DEFAULT_BUCKETS,
    Buckets,
    SessionKind,
    Sessions,
    calendar_timezone,
    default_session,
    sessions,
)
from core.errors import BadUserInput
from core.intervals import MAX_TS, MIN_TS, Interval, after_bucket, align_up
from core.settings import Settings
from graphql_api.cursors import parse_bar_cursor
from graphql_api.relay import PageArgs
from graphql_api.validation import time_range
from loaders.bars import BarKey, BarWindow, BucketCountKey, CountKey, SeriesKey
from loaders.buckets import NO_SPAN, Bucketing, Span, bucketing, span
from loaders.rows import SeriesColumns, StoredSeries, SymbolRow


@dataclass(frozen=True)
class Rule:
    """How one symbol's bars at one interval are bucketed, and the calendar it reads."""

    bucketing: Bucketing
    span: Span
    calendar: str = ALWAYS_OPEN  # the symbol's calendar: where gap-fill slots come from
    kind: SessionKind = SessionKind.ALL  # the hours asked for (before `bucketing` simplifies)

    def _slotting(self) -> tuple[Sessions, SessionKind, bool]:
        """The calendar, hours and alignment that slots follow."""
        b = self.bucketing
        if b.needs_calendar:
            return sessions(self.span.calendar), b.kind, b.aligned
        if b.base.is_intraday:
            # A 24/7 market, or every hour on the UTC grid: any grid slot.
            return sessions(ALWAYS_OPEN), b.kind, b.aligned
        # Stored daily bars are read unfiltered, but their slots are the calendar's trading
        # dates (no bar on a weekend or holiday), stamped like the bars.
        return sessions(self.calendar), self.kind, True

    @property
    def aligned(self) -> bool:
        """Whether buckets follow the calendar's session parts."""
        return self.bucketing.aligned

    def row_bound(self, stamp: datetime) -> datetime:
        """The base-row bound splitting buckets starting before `stamp` from the rest."""
        b = self.bucketing
        if b.base == b.interval:
            return stamp
        if not b.aligned:
            return align_up(b.interval, stamp)
        return sessions(self.span.calendar).align_up(b.interval, b.kind, stamp)

    def after(self, start: datetime) -> datetime:
        """The lower row bound of what lies strictly after the bucket starting at `start`."""
        b = self.bucketing
        if not b.aligned:
            return after_bucket(b.interval, b.base == b.interval, start)
        cal = sessions(self.span.calendar)
        if b.interval.is_intraday:
            return cal.bucket_end(b.interval, b.kind, start)
        return cal.day_row_bound(b.interval, b.interval.bucket_end(start))

    def slots(self, lo: datetime, hi: datetime, cap: int | None = None) -> list[datetime]:
        """Starts of the buckets of trading hours in [lo, hi), oldest first (at most `cap`)."""
        cal, kind, aligned = self._slotting()
        return cal.slots(self.bucketing.interval, kind, lo, hi, aligned, cap)

    def slots_before(self, lo: datetime, hi: datetime, count: int) -> list[datetime]:
        """The newest `count` bucket starts of trading hours in [lo, hi), oldest first."""
        cal, kind, aligned = self._slotting()
        return cal.slots_before(self.bucketing.interval, kind, lo, hi, aligned, count)

    def count_slots(self, lo: datetime, hi: datetime) -> int:
        """How many bucket starts of trading hours lie in [lo, hi)."""
        cal, kind, aligned = self._slotting()
        return cal.count_slots(self.bucketing.interval, kind, lo, hi, aligned)

    def data_window(self, base: StoredSeries) -> tuple[datetime, datetime]:
        """Bucket starts that can hold stored bars: [bucket of the first bar, newest end)."""
        b = self.bucketing
        first = base.first_ts
        if not b.aligned:
            first = b.interval.bucket_start(first)
        else:
            back = self.slots(first - timedelta(days=40), first + timedelta(microseconds=1))
            first = back[-1] if back else first
        return first, stored_end(base)

    def bounds(self, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
        """Base-row bounds [lo, hi) of the buckets whose start lies in [start, end)."""
        lo = MIN_TS if start is None else self.row_bound(start)
        hi = MAX_TS if end is None else self.row_bound(end)
        return lo, hi


def rule_for(
    symbol: SymbolRow,
    base: StoredSeries,
    interval: Interval,
    choice: Buckets,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Rule:
    """The bucketing of `symbol`'s bars at `interval` for `choice`, reading the calendar only
    over the stored days that [start, end) can reach."""
    cal = symbol.calendar
    kind = choice.kind or default_session(cal)
    b = bucketing(cal, base.timeframe, interval, kind, choice.aligned)
    if not b.needs_calendar:
        return Rule(b, NO_SPAN, cal, kind)
    lo = max(start or base.first_ts, base.first_ts)
    hi = min(end or stored_end(base), stored_end(base))
    if hi < lo:
        hi = lo
    return Rule(b, span(cal, calendar_timezone(cal), lo, hi), cal, kind)


#: Interval ladder the series walks up when a range holds too many points.
LADDER = tuple(Interval)


def stored_end(series: StoredSeries) -> datetime:
    """End of the newest stored bar of a series."""
    return series.timeframe.bucket_end(series.last_ts)


@dataclass(frozen=True)
class BarPlan:
    """A bars page to load: the key, and whether the loaded rows must be reversed."""

    key: BarKey
    count_key: CountKey
    reverse: bool
    rule: Rule
    after_ts: datetime | None  # the bucket starts of the `after`/`before` cursors
    before_ts: datetime | None


def plan_bars(
    symbol: SymbolRow,
    interval: Interval,
    start: datetime | None,
    end: datetime | None,
    page: PageArgs,
    newest_first: bool,
    choice: Buckets = DEFAULT_BUCKETS,
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
    rule = rule_for(symbol, base, interval, choice)
    lo, hi = rule.bounds(start, end)
    count_key = CountKey(
        symbol.id, base.timeframe, interval, lo, hi, base.version, rule.bucketing, rule.span
    )
    # "after" means further along the list; in a newest-first list that is older.
    older_than, newer_than = (after, before) if newest_first else (before, after)
    if older_than is not None:
        hi = min(hi, rule.row_bound(older_than))
    if newer_than is not None:
        lo = max(lo, rule.after(newer_than))
    descending = newest_first != page.from_end
    window = BarWindow(interval, base.timeframe, descending, rule.bucketing, adjust)
    return BarPlan(
        BarKey(symbol.id, lo, hi, stored_end(base), window, page.size, base.version, rule.span),
        count_key,
        reverse=page.from_end,
        rule=rule,
        after_ts=after,
        before_ts=before,
    )


#: Most session parts in a day (midnight, pre-market, regular, post-market, evening): each
#: can end in a cut bucket, one more than its length alone gives.
_PARTS_PER_DAY = 5


def _bucket_estimate(interval: Interval, lo: datetime, hi: datetime, aligned: bool = False) -> int:
    """An upper bound on the number of buckets between lo and hi."""
    seconds = (hi - lo).total_seconds()
    if interval == Interval.MN1:
        last = hi - timedelta(microseconds=1)  # hi is exclusive
        return (last.year - lo.year) * 12 + last.month - lo.month + 1
    cut = int(seconds // 86_400 + 2) * _PARTS_PER_DAY if aligned and interval.is_intraday else 0
    return int(seconds // interval.seconds) + 2 + cut


async def plan_series(
    symbol: SymbolRow,
    interval: Interval,
    start: datetime | None,
    end: datetime | None,
    max_points: int,
    settings: Settings,
    count: Callable[[BucketCountKey], Awaitable[int]],
    choice: Buckets = DEFAULT_BUCKETS,
    filled: bool = False,
    adjust: Adjust | None = None,
    load: Callable[[SeriesKey], Awaitable[SeriesColumns]] | None = None,
) -> tuple[SeriesKey, Rule] | None:
    """The loader key for one symbol's series at the finest interval giving <= max_points.

    The calendar span bounds the number of buckets from above (it counts nights, weekends
    and gaps too); only where that bound is too large are the buckets counted in SQL, with
    the count capped at max_points + 1 so the scan stops early. At a stored interval, with
    `load` (the series loader's), the series itself is read instead, capped at max_points + 1
    buckets: when it fits, that read is the answer (the caller's `load` of the returned key
    is served by the loader's memo), so a series that fits costs one scan, not two.
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
        rule = rule_for(symbol, base, candidate, choice, start, end)
        if filled:
            # Every slot becomes a bar: count slots, not stored buckets.
            lo_w, hi_w = rule.data_window(base)
            lo_w, hi_w = max(start or lo_w, lo_w), min(end or hi_w, hi_w)
            if len(rule.slots(lo_w, hi_w, max_points + 1)) <= max_points:
                chosen = candidate
                break
            continue
        if (
            span_hi <= span_lo
            or _bucket_estimate(candidate, span_lo, span_hi, rule.aligned) <= max_points
        ):
            chosen = candidate
            break
        lo, hi = rule.bounds(start, end)
        if load is not None and candidate == base.timeframe:
            # Stored bars: each row is a bucket, so reading one past max_points tells.
            capped = SeriesKey(
                symbol.id,
                base.timeframe,
                candidate,
                lo,
                hi,
                newest_end,
                base.version,
                rule.bucketing,
                rule.span,
                adjust,
                cap=max_points + 1,
            )
            if len((await load(capped)).ts) <= max_points:
                return capped, rule
            continue
        key = BucketCountKey(
            symbol.id,
            base.timeframe,
            candidate,
            lo,
            hi,
            max_points + 1,
            base.version,
            rule.bucketing,
            rule.span,
        )
        if await count(key) <= max_points:
            chosen = candidate
            break
    if chosen is None:
        raise BadUserInput(
            f"the range holds more than {max_points} monthly bars: raise `maxPoints` or narrow "
            "`from`/`to`"
        )
    rule = rule_for(symbol, base, chosen, choice, start, end)
    lo, hi = rule.bounds(start, end)
    series_key = SeriesKey(
        symbol.id,
        base.timeframe,
        chosen,
        lo,
        hi,
        newest_end,
        base.version,
        rule.bucketing,
        rule.span,
        adjust,
    )
    return series_key, rule


def plan_indicators(
    symbol: SymbolRow,
    interval: Interval,
    start: datetime | None,
    end: datetime | None,
    settings: Settings,
    choice: Buckets = DEFAULT_BUCKETS,
) -> tuple[StoredSeries | None, datetime, datetime, Rule | None]:
    """The base series, bucket bounds and rule for indicators; refuses ranges with too many
    bars."""
    time_range(start, end)
    base = symbol.base_for(interval)
    if base is None:
        return None, MIN_TS, MAX_TS, None
    # The warm-up reads before `start`: the calendar must reach back to the first bar.
    rule = rule_for(symbol, base, interval, choice, None, end)
    lo, hi = rule.bounds(start, end)
    newest_end = stored_end(base)
    span_lo, span_hi = max(lo, base.first_ts), min(hi, newest_end)
    limit = settings.max_series_points
    if span_hi > span_lo and _bucket_estimate(interval, span_lo, span_hi, rule.aligned) > limit:
        raise BadUserInput(
            f"the range can hold more than {limit} {interval.value} bars: narrow `from`/`to` "
            "or use a coarser interval"
        )
    return base, lo, hi, rule
