"""Split and dividend adjustment of bars at read time (standard back-adjustment).

Stored bars stay as printed. A read that asks for adjusted bars multiplies each bar's prices
by the product of the factors of the actions whose ex-date lies after the bar (and on or
before `as_of`), and its volume by the product of the split ratios of the same actions:

- a split of `ratio` new shares per old share (2 for 2-for-1, 1.5 for 3-for-2, 0.1 for a
  1-for-10 reverse split): price factor 1 / ratio, volume factor ratio;
- a cash dividend of `amount` per share: price factor 1 - amount / previous close, volume
  factor 1. The previous close is the close of the newest bar of the series being read
  (its stored base timeframe) before the ex-date. The amount is per share as of the
  ex-date, so when a split takes effect the same day the previous close is first divided by
  its ratio. A dividend with no bar before it adjusts nothing (there is nothing to adjust),
  and one whose factor would not be positive (amount >= previous close, bad data) is
  skipped rather than turning prices negative.

An action takes effect at 00:00 UTC of its ex-date: bars starting before that are adjusted,
the rest are not (bars are bucketed in UTC, so a daily bar of the ex-date is already "after").

The SQL here is the per-key part every bar statement shares (loaders.bars builds the
statements): `factors_sql` is a LATERAL subquery giving, per symbol, the sorted ex-times and
the cumulative factor for each stretch between them; `adjusted_sql` is the per-row value
expression that looks a row's stretch up with `width_bucket` (a binary search over a
handful of dates). Factors multiply rows before any resampling, so a weekly bar spanning a
split aggregates adjusted daily or minute rows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime

from core.bar import BAR_FIELDS, BarField


class Adjustment(enum.Enum):
    """Which corporate actions a read applies."""

    RAW = "RAW"
    SPLIT = "SPLIT"
    DIVIDEND = "DIVIDEND"
    ALL = "ALL"

    @property
    def kinds(self) -> tuple[str, ...]:
        """The `corporate_actions.kind` values applied."""
        return _KINDS[self]


_KINDS = {
    Adjustment.RAW: (),
    Adjustment.SPLIT: ("SPLIT",),
    Adjustment.DIVIDEND: ("DIVIDEND",),
    Adjustment.ALL: ("SPLIT", "DIVIDEND"),
}

#: Price columns are multiplied by the price factor; the others by the volume factor.
PRICE_AGGREGATES = frozenset({"first", "max", "min", "last"})


@dataclass(frozen=True, slots=True)
class Adjust:
    """An adjusted read: the kinds applied and the date the actions are known at."""

    adjustment: Adjustment
    as_of: date

    @property
    def cache_part(self) -> str:
        """What a cache key carries for this adjustment."""
        return f"{self.adjustment.value}@{self.as_of.isoformat()}"


def resolve(adjustment: Adjustment, as_of: date | None, today: date | None = None) -> Adjust | None:
    """The adjustment of a request, or None for raw bars (whose reads stay as they were).

    Without `as_of`, actions are known as of today (UTC): an announced action whose ex-date
    is still ahead does not change prices yet.
    """
    if adjustment == Adjustment.RAW:
        return None
    return Adjust(adjustment, as_of or today or datetime.now(UTC).date())


def factors_sql(sid: str, timeframe: str, kinds: str, as_of: str) -> str:
    """LATERAL subquery `adj(thr, pf, vf)` for symbol `sid` (SQL expressions for its id,
    the stored timeframe read, the kinds as text[] and the as-of date). No braces in it:
    callers fill their templates with str.format.

    thr: ex-times (00:00 UTC of the ex-dates) ascending; pf/vf: one more element than thr,
    element i + 1 being the product of the factors of the actions after the first i
    thresholds, i.e. what multiplies a row with `width_bucket(ts, thr) = i`.
    """
    return f"""CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(e.ex_ts ORDER BY e.ex_ts, e.id), ARRAY[]::timestamptz[]) AS thr,
           coalesce(array_agg(e.pf ORDER BY e.ex_ts, e.id), ARRAY[]::float8[]) || 1.0::float8
               AS pf,
           coalesce(array_agg(e.vf ORDER BY e.ex_ts, e.id), ARRAY[]::float8[]) || 1.0::float8
               AS vf
    FROM (
        SELECT f.id, f.ex_ts,
               adjustment_product(f.pf) OVER w AS pf, adjustment_product(f.vf) OVER w AS vf
        FROM (
            SELECT a.id, a.ex_date::timestamp AT TIME ZONE 'UTC' AS ex_ts,
                   CASE WHEN a.kind = 'SPLIT' THEN 1.0 / a.value
                        WHEN 1.0 - a.value * coalesce(s.value, 1.0) / p.close > 0
                        THEN 1.0 - a.value * coalesce(s.value, 1.0) / p.close
                        ELSE 1.0 END AS pf,
                   CASE WHEN a.kind = 'SPLIT' THEN a.value ELSE 1.0 END AS vf
            FROM corporate_actions a
            LEFT JOIN corporate_actions s
                   ON a.kind = 'DIVIDEND' AND s.symbol_id = a.symbol_id AND s.kind = 'SPLIT'
                  AND s.ex_date = a.ex_date
            LEFT JOIN LATERAL (
                SELECT close FROM bars
                WHERE a.kind = 'DIVIDEND' AND symbol_id = a.symbol_id AND timeframe = {timeframe}
                  AND ts < a.ex_date::timestamp AT TIME ZONE 'UTC'
                ORDER BY ts DESC LIMIT 1
            ) p ON true
            WHERE a.symbol_id = {sid} AND a.kind = ANY({kinds}) AND a.ex_date <= {as_of}
        ) f
        WINDOW w AS (ORDER BY f.ex_ts DESC, f.id DESC)
    ) e
) adj"""


def adjusted_sql(field: BarField, prefix: str = "", ts: str = "ts") -> str:
    """One value column of a row multiplied by its factor (`adj` from `factors_sql`)."""
    factors = "adj.pf" if field.aggregate in PRICE_AGGREGATES else "adj.vf"
    return (
        f"{prefix}{field.name} * {factors}[width_bucket({prefix}{ts}, adj.thr) + 1] AS {field.name}"
    )


def adjusted_columns_sql(prefix: str = "", fields: tuple[BarField, ...] = BAR_FIELDS) -> str:
    """The value columns of a row, adjusted (`open * adj.pf[…] AS open, …`)."""
    return ", ".join(adjusted_sql(f, prefix) for f in fields)
