"""How base rows become buckets in SQL: a UTC grid, or the session parts of a calendar.

Every reader of bars (pages, counts, series, indicators) selects `bucket, ts, <columns>`
for one key `k` of its batch through `source_sql`, so they all bucket and filter alike.
Keys expose `k.sid` (symbol), the reader's time bounds, and for calendar work `k.cal`,
`k.tz` (the calendar and its time zone) and `k.dlo`/`k.dhi` (the trading days that can
matter, from the symbol's stored range: a walk never visits sessions outside it).

Four shapes, cheapest first, picked by `Bucketing`:
- no calendar work (24/7 markets, `session: ALL` with UTC alignment): today's statements;
- a filter only (stored intervals, UTC alignment, and D1/W1/MN1 from intraday bars, whose
  bucket is the trading date): `ts <@` one multirange of the sessions' hours, built once per
  key; measured at 1.0-1.5x the unfiltered page for 50 symbols x 100 bars, where a join per
  row cost 3x (tests/api/test_sessions.py checks the answers; docs/benchmarks.md the speed);
- intraday buckets aligned to session parts: the sessions walked in time order, each one's
  bars read by an index range scan, so the bucket's origin (the part's start) is at hand;
- `session: ALL` aligned to sessions: a join per row (hours outside every session form
  parts bounded by local midnight), the slow shape, only when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from core.adjustments import adjusted_columns_sql
from core.bar import BAR_FIELDS, BarField, columns_sql
from core.calendars import SessionKind
from core.intervals import Interval

_ORIGIN = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"  # a Monday at midnight UTC

#: Calendars whose sessions are whole UTC days: session-aligned buckets equal UTC ones.
UTC_DAY_CALENDARS = frozenset({"24/7", "FX"})


def bucket_sql(interval: Interval, column: str = "ts") -> str:
    """SQL for the start of the `interval` bucket holding `column` (UTC-aligned)."""
    if interval == Interval.MN1:
        return f"date_trunc('month', {column}, 'UTC')"
    if interval == Interval.W1:
        return f"date_trunc('week', {column}, 'UTC')"
    return f"date_bin(INTERVAL '{interval.seconds} seconds', {column}, {_ORIGIN})"


def rows_per_bucket(base: Interval, interval: Interval) -> int:
    """The most base bars one bucket can hold."""
    return max(1, -(-interval.seconds // base.seconds))


@dataclass(frozen=True, slots=True)
class Bucketing:
    """How one statement turns base bars into `interval` buckets."""

    base: Interval
    interval: Interval
    kind: SessionKind = SessionKind.ALL  # which hours count (ALL: no filter)
    aligned: bool = False  # buckets start at session parts (else on the UTC grid)

    @property
    def needs_calendar(self) -> bool:
        """Whether the statement reads `trading_sessions` (keys must carry cal/tz/dlo/dhi)."""
        return self.kind != SessionKind.ALL or self.aligned


def bucketing(
    calendar: str, base: Interval, interval: Interval, kind: SessionKind, session_aligned: bool
) -> Bucketing:
    """The cheapest `Bucketing` giving the answer asked for, for a symbol on `calendar`.

    Daily stored bars are a provider's trading-day bars: they are never filtered, and their
    weeks and months are the same on either alignment (they are stamped 00:00 UTC of their
    trading date). On 24/7 and FX calendars every session is a whole UTC day.
    """
    if not base.is_intraday:
        return Bucketing(base, interval)
    if calendar in UTC_DAY_CALENDARS:
        # A 24/7 market has nothing outside its sessions; FX has no pre/post-market hours.
        if calendar == "24/7" or kind == SessionKind.ALL:
            return Bucketing(base, interval)
        return Bucketing(base, interval, SessionKind.REGULAR, False)
    return Bucketing(base, interval, kind, session_aligned and base != interval)


@dataclass(frozen=True, slots=True)
class Span:
    """A key's calendar and the trading days (local dates) its walk may visit."""

    calendar: str = "24/7"
    tz: str = "UTC"
    dlo: date = date(1800, 1, 1)
    dhi: date = date(2500, 1, 1)


#: The span of a key whose statement reads no calendar.
NO_SPAN = Span()


def span(calendar: str, tz: str, lo: datetime, hi: datetime) -> Span:
    """The Span of instants [lo, hi) (already clipped to what is stored), a day wider on
    each side so that no zone offset can leave a session out."""
    return Span(calendar, tz, (lo - timedelta(days=1)).date(), (hi + timedelta(days=1)).date())


#: Key columns of the four span arrays, in `span_types` order.
SPAN_COLUMNS = "cal, tz, dlo, dhi"


def span_types(first: int) -> str:
    """The four span arrays as parameters $first.. (for an unnest of the keys)."""
    types = ("text", "text", "date", "date")
    return ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(types))


def span_args(spans: list[Span]) -> list[list[object]]:
    """The four arrays of SPAN_TYPES for `spans`."""
    return [
        [s.calendar for s in spans],
        [s.tz for s in spans],
        [s.dlo for s in spans],
        [s.dhi for s in spans],
    ]


def _hours(kind: SessionKind) -> tuple[str, str]:
    return ("open", "close") if kind == SessionKind.REGULAR else ("pre_open", "post_close")


def _local_day_stamp(interval: Interval, column: str) -> str:
    """00:00 UTC of the trading date (week, month) of instant `column` in zone k.tz."""
    day = f"(({column} AT TIME ZONE k.tz)::date)::timestamp"
    if interval == Interval.W1:
        day = f"date_trunc('week', {day})"
    elif interval == Interval.MN1:
        day = f"date_trunc('month', {day})"
    return f"({day} AT TIME ZONE 'UTC')"


def source_sql(
    b: Bucketing,
    bounds: str = "",
    order: str | None = None,
    limit: str | None = None,
    fields: tuple[BarField, ...] = BAR_FIELDS,
    timeframe: str = "$4",
    adjusted: bool = False,
) -> str:
    """SELECT bucket, ts, <value columns> of key k's base bars (to go inside a LATERAL).

    `bounds` is extra conditions on `ts` (" AND ts >= k.lo ..."); `order` ("ASC"/"DESC")
    walks the rows in time order and `limit` caps how many are read. `adjusted` multiplies
    each row's values by its corporate-action factors (core.adjustments: the statement joins
    `adj` after its keys), before any bucketing.
    """

    def values(prefix: str = "") -> str:
        if adjusted:
            return adjusted_columns_sql(prefix, fields)
        return columns_sql(prefix, fields)

    walk = f" ORDER BY ts {order}" if order else ""
    cap = f" LIMIT {limit}" if limit else ""
    stored = b.base == b.interval
    if not b.needs_calendar:
        bucket = "ts" if stored else bucket_sql(b.interval)
        return (
            f"SELECT {bucket} AS bucket, ts, {values()} FROM bars "
            f"WHERE symbol_id = k.sid AND timeframe = {timeframe}{bounds}{walk}{cap}"
        )
    secs = f"INTERVAL '{b.interval.seconds} seconds'"
    if b.kind == SessionKind.ALL and not b.interval.is_intraday:
        return (
            f"SELECT {_local_day_stamp(b.interval, 'ts')} AS bucket, ts, "
            f"{values()} FROM bars "
            f"WHERE symbol_id = k.sid AND timeframe = {timeframe}{bounds}{walk}{cap}"
        )
    if b.kind == SessionKind.ALL:
        # Aligned, every stored bar: each row finds its day's session (or none).
        midnight = "(((b.ts AT TIME ZONE k.tz)::date)::timestamp AT TIME ZONE k.tz)"
        origin = (
            f"CASE WHEN s.day IS NULL OR b.ts < s.pre_open THEN {midnight} "
            "WHEN b.ts < s.open THEN s.pre_open WHEN b.ts < s.close THEN s.open "
            "WHEN b.ts < s.post_close THEN s.close ELSE s.post_close END"
        )
        bucket = f"date_bin({secs}, b.ts, {origin})"
        walk = f" ORDER BY b.ts {order}" if order else ""
        return (
            f"SELECT {bucket} AS bucket, b.ts, {values('b.')} FROM bars b "
            "LEFT JOIN trading_sessions s ON s.calendar = k.cal "
            "AND s.day = (b.ts AT TIME ZONE k.tz)::date "
            f"WHERE b.symbol_id = k.sid AND b.timeframe = {timeframe}{bounds}{walk}{cap}"
        )
    start, end = _hours(b.kind)
    if b.aligned and b.interval.is_intraday:
        if b.kind == SessionKind.REGULAR:
            origin = "s.open"
        else:
            origin = (
                "CASE WHEN b.ts < s.open THEN s.pre_open WHEN b.ts < s.close THEN s.open "
                "ELSE s.close END"
            )
        # Sessions in time order, each read by an index range scan; ordered by day, then
        # ts, which an incremental sort over the day-ordered session scan delivers cheaply.
        walk = f" ORDER BY s.day {order}, b.ts {order}" if order else ""
        return (
            f"SELECT date_bin({secs}, b.ts, {origin}) AS bucket, b.ts, "
            f"{columns_sql('b.', fields)} "
            "FROM trading_sessions s CROSS JOIN LATERAL ("
            f"SELECT ts, {values()} FROM bars "
            f"WHERE symbol_id = k.sid AND timeframe = {timeframe}"
            f" AND ts >= s.{start} AND ts < s.{end}{bounds}) b "
            f"WHERE s.calendar = k.cal AND s.day >= k.dlo AND s.day <= k.dhi{walk}{cap}"
        )
    if stored:
        bucket = "ts"
    elif b.aligned:
        bucket = _local_day_stamp(b.interval, "ts")
    else:
        bucket = bucket_sql(b.interval)
    return (
        f"SELECT {bucket} AS bucket, ts, {values()} FROM ("
        f"SELECT range_agg(tstzrange(s.{start}, s.{end})) AS hours FROM trading_sessions s "
        "WHERE s.calendar = k.cal AND s.day >= k.dlo AND s.day <= k.dhi) h, bars "
        f"WHERE symbol_id = k.sid AND timeframe = {timeframe} AND ts <@ h.hours{bounds}{walk}{cap}"
    )
