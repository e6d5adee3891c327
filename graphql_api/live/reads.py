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

from core.adjustments import Adjust
from core.bar import BAR_FIELDS, BarField, columns_sql, resample_sql
from core.events import BarChange
from core.intervals import Interval
from loaders.bars import adjust_args, adjust_hook, bucket_sql, rows_per_bucket
from loaders.rows import BarRow
from loaders.sql import fetch

#: Most base rows a replay may aggregate (a D1 replay from M1 bars reads 1,440 per bar).
MAX_REPLAY_ROWS = 500_000


def live_sql(fields: tuple[BarField, ...] = BAR_FIELDS, adjusted: bool = False) -> dict[str, str]:
    """The statements of live reads by name; `{bucket}` (resampled ones) is left to fill.

    "meta" wraps one of the others as `{inner}`. Adjusted statements (loaders.bars'
    `adjust_hook`) take the kinds and as-of date after the others' parameters.
    """
    touched_join, touched_cols = adjust_hook(adjusted, 6, "$2", fields, sid="$1")
    replay_join, replay_cols = adjust_hook(adjusted, 5, "$2", fields, sid="$1")
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
    SELECT ts AS bucket, {touched_cols}, 0::bigint AS fetched FROM bars{touched_join}
    WHERE symbol_id = $1 AND timeframe = $2 AND ts >= $3 AND ts < $4
    ORDER BY ts DESC LIMIT $5
""",
        "touched_resampled": "SELECT * FROM ("
        + aggregate(
            f"SELECT {{bucket}} AS bucket, ts, {touched_cols} FROM bars{touched_join} "
            "WHERE symbol_id = $1 AND timeframe = $2 AND ts >= $3 AND ts < $4"
        )
        + ") AS g ORDER BY g.bucket DESC LIMIT $5",
        # The replay walks forward from `since` and stops after a row limit, like the bars
        # loader.
        "replay_stored": f"""
    SELECT ts AS bucket, {replay_cols}, 0::bigint AS fetched FROM bars{replay_join}
    WHERE symbol_id = $1 AND timeframe = $2 AND ts >= $3 ORDER BY ts LIMIT $4
""",
        "replay_resampled": aggregate(
            f"SELECT {{bucket}} AS bucket, ts, {replay_cols} FROM bars{replay_join} "
            "WHERE symbol_id = $1 AND timeframe = $2 AND ts >= $3 ORDER BY ts LIMIT $4"
        ),
    }


_SQL = live_sql()
_SQL_ADJUSTED = live_sql(adjusted=True)
_META = _SQL["meta"]
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
    base: Interval, interval: Interval, first_ts: datetime, last_ts: datetime
) -> tuple[datetime, datetime]:
    """Base-row bounds [lo, hi) of every `interval` bucket holding a bar in [first, last]."""
    if base == interval:
        return first_ts, last_ts + timedelta(microseconds=1)
    return interval.bucket_start(first_ts), interval.bucket_end(interval.bucket_start(last_ts))


def _series(rows: Sequence[Any], base: Interval, interval: Interval) -> SeriesRead:
    head = rows[0]
    newest_end = base.bucket_end(head[1]) if head[1] is not None else None
    stored = frozenset(Interval(t) for t in head[2] or ())
    bars = [
        _make_row(
            (
                *r[3:_FETCHED],
                # The read API's rule: a bucket is closed once the stored bars reach its end.
                base == interval
                or (newest_end is not None and interval.bucket_end(r[3]) <= newest_end),
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
    adjust: Adjust | None = None,
) -> SeriesRead:
    """The newest `limit` buckets of `interval` built from base rows in [lo, hi)."""
    sql = _SQL if adjust is None else _SQL_ADJUSTED
    inner = (
        sql["touched_stored"]
        if base == interval
        else sql["touched_resampled"].format(bucket=bucket_sql(interval))
    )
    rows = await fetch(
        engine,
        _META.format(inner=inner),
        symbol_id,
        base.value,
        lo,
        hi,
        limit,
        *adjust_args(adjust),
    )
    return _series(rows, base, interval)


async def read_replay(
    engine: AsyncEngine,
    symbol_id: int,
    base: Interval,
    interval: Interval,
    since: datetime,
    limit: int,
    adjust: Adjust | None = None,
) -> SeriesRead:
    """Buckets of `interval` from the one holding `since` on; ReplayTooLong past `limit`."""
    lo = since if base == interval else interval.bucket_start(since)
    sql = _SQL if adjust is None else _SQL_ADJUSTED
    if base == interval:
        inner, row_limit = sql["replay_stored"], limit + 1
    else:
        inner = sql["replay_resampled"].format(bucket=bucket_sql(interval))
        row_limit = min((limit + 1) * rows_per_bucket(base, interval), MAX_REPLAY_ROWS)
    rows = await fetch(
        engine,
        _META.format(inner=inner),
        symbol_id,
        base.value,
        lo,
        row_limit,
        *adjust_args(adjust),
    )
    read = _series(rows, base, interval)
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
