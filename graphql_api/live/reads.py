"""The SQL of live updates: buckets an ingest batch touched, and the `since` replay.

Both read bars with the read API's resampling (`loaders.bars.bucket_sql` and core.bar's
aggregate per column) and, in the same statement and so the same
snapshot, the series' data version and newest stored bar. The version is the newest
`bar_changes` id of the series: the id a change event carries, so an event can be compared
with a read (see core.events: per series these ids grow in commit order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from core.adjustments import Adjust, factors_sql
from core.bar import BAR_FIELDS, BarField, columns_sql, resample_sql
from core.calendars import sessions
from core.events import BarChange
from core.intervals import Interval
from loaders.bars import bucket_end, bucket_sql, rows_per_bucket
from loaders.buckets import NO_SPAN, Bucketing, Span, source_sql
from loaders.rows import BarRow
from loaders.sql import fetch

#: Most base rows a replay may aggregate (a D1 replay from M1 bars reads 1,440 per bar).
MAX_REPLAY_ROWS = 500_000


def live_sql(fields: tuple[BarField, ...] = BAR_FIELDS) -> dict[str, str]:
    """The statements of live reads by name; `{bucket}` (resampled ones) is left to fill.

    "meta" wraps one of the others as `{inner}`.
    """
    cols = columns_sql("", fields)
    # The version as "newest id first, stop at the first of this timeframe": a walk down the
    # (symbol_id, id) index from its end, not an aggregate over every change of the symbol.
    meta = f"""
SELECT (SELECT id FROM bar_changes WHERE symbol_id = $1 AND timeframe = $2
        ORDER BY id DESC LIMIT 1) AS version,
       (SELECT last_ts FROM bar_series WHERE symbol_id = $1 AND timeframe = $2) AS last_ts,
       (SELECT array_agg(timeframe) FROM bar_series WHERE symbol_id = $1) AS stored,
       b.bucket, {columns_sql("b.", fields)}, b.fetched
FROM (SELECT 1) AS one
LEFT JOIN LATERAL ({{inner}}) AS b ON true
ORDER BY b.bucket
"""

    def aggregate(rows: str) -> str:
        return f"""
    SELECT r.bucket, {resample_sql("r.", fields)}, sum(count(*)) OVER () AS fetched
    FROM ({rows}) AS r
    GROUP BY r.bucket
"""

    return {
        "meta": meta,
        # Touched buckets, newest first so the limit keeps the newest.
        "touched_stored": f"""
    SELECT ts AS bucket, {cols}, 0::bigint AS fetched FROM bars
    WHERE symbol_id = $1 AND timeframe = $2 AND ts >= $3 AND ts < $4
    ORDER BY ts DESC LIMIT $5
""",
        "touched_resampled": "SELECT * FROM ("
        + aggregate(
            f"SELECT {{bucket}} AS bucket, ts, {cols} FROM bars "
            "WHERE symbol_id = $1 AND timeframe = $2 AND ts >= $3 AND ts < $4"
        )
        + ") AS g ORDER BY g.bucket DESC LIMIT $5",
        # The replay walks forward from `since` and stops after a row limit, like the bars
        # loader.
        "replay_stored": f"""
    SELECT ts AS bucket, {cols}, 0::bigint AS fetched FROM bars
    WHERE symbol_id = $1 AND timeframe = $2 AND ts >= $3 ORDER BY ts LIMIT $4
""",
        "replay_resampled": aggregate(
            f"SELECT {{bucket}} AS bucket, ts, {cols} FROM bars "
            "WHERE symbol_id = $1 AND timeframe = $2 AND ts >= $3 ORDER BY ts LIMIT $4"
        ),
    }


def _keyed(src: str, first_extra: int, rule: Bucketing, adjusted: bool) -> str:
    """`src` (a source_sql for key k) over the one key of a live read: $1 is the symbol, $2
    the stored timeframe; the span's four values (when the rule reads the calendar) and then
    the adjustment's two (core.adjustments) follow from $first_extra."""
    n = first_extra
    cols = ["$1::int AS sid"]
    if rule.needs_calendar:
        cols += [f"${n}::text AS cal", f"${n + 1}::text AS tz"]
        cols += [f"${n + 2}::date AS dlo", f"${n + 3}::date AS dhi"]
        n += 4
    adj = ""
    if adjusted:
        adj = " " + factors_sql("k.sid", "$2", f"${n}::text[]", f"${n + 1}::date")
    return f"SELECT x.* FROM (SELECT {', '.join(cols)}) k{adj} CROSS JOIN LATERAL ({src}) x"


def keyed_sql(
    rule: Bucketing, name: str, adjusted: bool, fields: tuple[BarField, ...] = BAR_FIELDS
) -> str:
    """The `touched` or `replay` inner statement of a rule that reads the calendar (a session
    filter or session-aligned buckets) or of an adjusted read; their extra values bind after
    the statement's own (`_extra_args`)."""
    cols = columns_sql("", fields)
    stored = rule.base == rule.interval
    if name == "touched":
        bounds = " AND ts >= $3 AND ts < $4"
        src = _keyed(source_sql(rule, bounds, timeframe="$2", adjusted=adjusted), 6, rule, adjusted)
        if stored:
            return (
                f"SELECT bucket, {cols}, 0::bigint AS fetched FROM ({src}) s "
                "ORDER BY bucket DESC LIMIT $5"
            )
        return (
            f"SELECT * FROM (SELECT r.bucket, {resample_sql('r.', fields)}, "
            f"sum(count(*)) OVER () AS fetched FROM ({src}) r GROUP BY r.bucket) g "
            "ORDER BY g.bucket DESC LIMIT $5"
        )
    src = _keyed(
        source_sql(rule, " AND ts >= $3", "ASC", "$4", timeframe="$2", adjusted=adjusted),
        5,
        rule,
        adjusted,
    )
    if stored:
        return f"SELECT bucket, {cols}, 0::bigint AS fetched FROM ({src}) s"
    return (
        f"SELECT r.bucket, {resample_sql('r.', fields)}, sum(count(*)) OVER () AS fetched "
        f"FROM ({src}) r GROUP BY r.bucket"
    )


def _extra_args(rule: Bucketing, span: Span, adjust: Adjust | None) -> list[object]:
    out: list[object] = [span.calendar, span.tz, span.dlo, span.dhi] if rule.needs_calendar else []
    if adjust is not None:
        out += [list(adjust.adjustment.kinds), adjust.as_of]
    return out


_SQL = live_sql()
_META = _SQL["meta"]
_TOUCHED_STORED = _SQL["touched_stored"]
_TOUCHED_RESAMPLED = _SQL["touched_resampled"]
_REPLAY_STORED = _SQL["replay_stored"]
_REPLAY_RESAMPLED = _SQL["replay_resampled"]
_FETCHED = 4 + len(BAR_FIELDS)  # index of `fetched` in a meta row
_make_row = BarRow._make  # bound once, as in loaders.bars


class ReplayTooLong(Exception):
    """More bars lie after `since` than one replay may send."""


@dataclass(frozen=True, slots=True)
class SeriesRead:
    """Bars of one series at one interval, read in one snapshot with the series' state."""

    version: int  # newest bar_changes id of the base series (0: never written)
    newest_end: datetime | None  # end of the newest stored base bar
    stored: frozenset[Interval]  # every timeframe stored for the symbol
    rows: list[BarRow]  # oldest first


def base_for(stored: frozenset[Interval], interval: Interval) -> Interval | None:
    """The finest stored timeframe dividing `interval` (the read API's choice of base)."""
    candidates = [t for t in stored if t.divides(interval)]
    return min(candidates, key=lambda t: t.seconds) if candidates else None


def touched_range(
    base: Interval,
    interval: Interval,
    first_ts: datetime,
    last_ts: datetime,
    rule: Bucketing | None = None,
    span: Span = NO_SPAN,
) -> tuple[datetime, datetime]:
    """Base-row bounds [lo, hi) of every `interval` bucket holding a bar in [first, last]
    (session-aligned buckets when `rule` says so)."""
    tiny = timedelta(microseconds=1)
    if base == interval:
        return first_ts, last_ts + tiny
    if rule is None or not rule.aligned:
        return interval.bucket_start(first_ts), interval.bucket_end(interval.bucket_start(last_ts))
    cal = sessions(span.calendar)
    if not interval.is_intraday:
        return cal.day_rows(interval, first_ts)[0], cal.day_rows(interval, last_ts)[1]
    first = cal.bucket_start(interval, rule.kind, first_ts)
    last = cal.bucket_start(interval, rule.kind, last_ts)
    # A bar outside the hours asked for is in no bucket: its own instant bounds the read.
    lo = first if first is not None else first_ts
    hi = cal.bucket_end(interval, rule.kind, last) if last is not None else last_ts + tiny
    return lo, hi


def _series(
    rows: Sequence[Any],
    base: Interval,
    interval: Interval,
    rule: Bucketing | None = None,
    span: Span = NO_SPAN,
) -> SeriesRead:
    rule = rule or Bucketing(base, interval)
    head = rows[0]
    newest_end = base.bucket_end(head[1]) if head[1] is not None else None
    stored = frozenset(Interval(t) for t in head[2] or ())
    bars = [
        _make_row(
            (
                *r[3:_FETCHED],
                # The read API's rule: a bucket is closed once the stored bars reach its end.
                base == interval
                or (newest_end is not None and bucket_end(rule, span, r[3]) <= newest_end),
            )
        )
        for r in rows
        if r[3] is not None
    ]
    return SeriesRead(int(head[0] or 0), newest_end, stored, bars)


async def read_touched(
    engine: AsyncEngine,
    symbol_id: int,
    base: Interval,
    interval: Interval,
    lo: datetime,
    hi: datetime,
    limit: int,
    rule: Bucketing | None = None,
    span: Span = NO_SPAN,
    adjust: Adjust | None = None,
) -> SeriesRead:
    """The newest `limit` buckets of `interval` built from base rows in [lo, hi)."""
    rule = rule or Bucketing(base, interval)
    if rule.needs_calendar or adjust is not None:
        inner = keyed_sql(rule, "touched", adjust is not None)
    elif base == interval:
        inner = _TOUCHED_STORED
    else:
        inner = _TOUCHED_RESAMPLED.format(bucket=bucket_sql(interval))
    rows = await fetch(
        engine,
        _META.format(inner=inner),
        symbol_id,
        base.value,
        lo,
        hi,
        limit,
        *_extra_args(rule, span, adjust),
    )
    return _series(rows, base, interval, rule, span)


async def read_replay(
    engine: AsyncEngine,
    symbol_id: int,
    base: Interval,
    interval: Interval,
    since: datetime,
    limit: int,
    rule: Bucketing | None = None,
    span: Span = NO_SPAN,
    adjust: Adjust | None = None,
) -> SeriesRead:
    """Buckets of `interval` from the one holding `since` on; ReplayTooLong past `limit`."""
    rule = rule or Bucketing(base, interval)
    if rule.aligned and not interval.is_intraday:
        # Daily (weekly, monthly) bars are stamped 00:00 UTC of their trading date: `since`
        # names the stamp of the first bar to send, as it does on the UTC grid.
        stamp = interval.bucket_start(since)
        lo = sessions(span.calendar).day_row_bound(interval, stamp)
    else:
        lo = touched_range(base, interval, since, since, rule, span)[0]
    if rule.needs_calendar or adjust is not None:
        inner = keyed_sql(rule, "replay", adjust is not None)
        row_limit = (
            limit + 1
            if base == interval
            else min((limit + 1) * rows_per_bucket(base, interval), MAX_REPLAY_ROWS)
        )
    elif base == interval:
        inner, row_limit = _REPLAY_STORED, limit + 1
    else:
        inner = _REPLAY_RESAMPLED.format(bucket=bucket_sql(interval))
        row_limit = min((limit + 1) * rows_per_bucket(base, interval), MAX_REPLAY_ROWS)
    rows = await fetch(
        engine,
        _META.format(inner=inner),
        symbol_id,
        base.value,
        lo,
        row_limit,
        *_extra_args(rule, span, adjust),
    )
    read = _series(rows, base, interval, rule, span)
    fetched = int(rows[0][_FETCHED] or 0) if base != interval else len(read.rows)
    if len(read.rows) > limit or (base != interval and fetched >= row_limit):
        raise ReplayTooLong(f"more than {limit} {interval.value} bars after `since`")
    return read


_CHANGES_AFTER = """
SELECT c.id, c.symbol_id, c.timeframe, c.first_ts, c.last_ts, c.rows, c.source
FROM unnest($1::int[], $2::bigint[]) AS k(sid, after)
CROSS JOIN LATERAL (
    SELECT id, symbol_id, timeframe, first_ts, last_ts, rows, source FROM bar_changes
    WHERE symbol_id = k.sid AND id > k.after ORDER BY id LIMIT $3
) AS c
ORDER BY c.id
"""


async def changes_after(
    engine: AsyncEngine, after: dict[int, int], *, limit: int = 1_000
) -> list[BarChange]:
    """Changes of each symbol with an id above its given one, oldest first (catch-up)."""
    if not after:
        return []
    sids = sorted(after)
    rows = await fetch(engine, _CHANGES_AFTER, sids, [after[s] for s in sids], limit)
    return [BarChange(r[1], r[2], r[3], r[4], r[5], r[0], r[6]) for r in rows]


async def newest_change_ids(engine: AsyncEngine, symbol_ids: Sequence[int]) -> dict[int, int]:
    """The newest change id of each symbol (0 when none): where a catch-up starts from."""
    rows = await fetch(
        engine,
        "SELECT k.sid, coalesce((SELECT max(id) FROM bar_changes WHERE symbol_id = k.sid), 0) "
        "FROM unnest($1::int[]) AS k(sid)",
        list(symbol_ids),
    )
    return {int(r[0]): int(r[1]) for r in rows}


async def tickers_of(engine: AsyncEngine, symbol_ids: Sequence[int]) -> dict[int, str]:
    """Tickers by symbol id."""
    rows = await fetch(
        engine, "SELECT id, ticker FROM symbols WHERE id = ANY($1::int[])", list(symbol_ids)
    )
    return {int(r[0]): str(r[1]) for r in rows}
