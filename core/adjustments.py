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
statements): `factors_sql` joins, per symbol, the sorted ex-times and the cumulative factor
for each stretch between them (computed by the database function `adjustment_factors` of
migration 0005); `adjusted_sql` is the per-row value expression that looks a row's stretch
up with `width_bucket` (a binary search over a handful of dates). Factors multiply rows
before any resampling, so a weekly bar spanning a split aggregates adjusted daily or minute
rows.
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
    """The LATERAL join giving `adj(thr, pf, vf)` for symbol `sid` (SQL expressions for its
    id, the stored timeframe read, the kinds as text[] and the as-of date).

    thr: ex-times (00:00 UTC of the ex-dates) ascending; pf/vf: one more element than thr,
    element i + 1 being the product of the factors of the actions after the first i
    thresholds, i.e. what multiplies a row with `width_bucket(ts, thr) = i`.

    The factors come from the database function `adjustment_factors` (migration 0005, the
    formulas of this module's docstring). A function, not the same query inlined: PL/pgSQL
    is opaque to the planner and keeps its own cached plans, while inlined, its look-up of
    each dividend's previous close in `bars` made PostgreSQL plan the statement's scan of
    every partition twice, on every execution: 8 ms against 4 ms for case (b) of
    benchmarks/read_api.py (measured with asyncpg prepared statements, 50 runs each).
    No braces in it: callers fill their templates with str.format.
    """
    return f"CROSS JOIN LATERAL adjustment_factors({sid}, {timeframe}, {kinds}, {as_of}) adj"


def adjusted_sql(field: BarField, prefix: str = "", ts: str = "ts") -> str:
    """One value column of a row multiplied by its factor (`adj` from `factors_sql`)."""
    factors = "adj.pf" if field.aggregate in PRICE_AGGREGATES else "adj.vf"
    return (
        f"{prefix}{field.name} * {factors}[width_bucket({prefix}{ts}, adj.thr) + 1] AS {field.name}"
    )


def adjusted_columns_sql(prefix: str = "", fields: tuple[BarField, ...] = BAR_FIELDS) -> str:
    """The value columns of a row, adjusted (`open * adj.pf[…] AS open, …`)."""
    return ", ".join(adjusted_sql(f, prefix) for f in fields)
