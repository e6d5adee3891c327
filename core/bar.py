"""The bar's value columns, described once: SQL, COPY, ingest and export lists derive from here.

A bar is keyed by (symbol_id, timeframe, ts); everything after the key is a value column
listed in `BAR_FIELDS`, in storage order. The read path's SQL (loaders.bars,
graphql_api.live.reads), the binary COPY layout (workers.pgcopy), the upsert
(workers.upsert), file validation (workers.validation), provider pages
(workers.providers.base) and CSV export (workers.export) build their column lists from
this tuple, so the SQL text they issue is the same as when it was written out by hand.

Adding a field: append a `BarField`, add a migration for the column (and its CHECK, if
any, in core.tables), and give the GraphQL types and BarRow/SeriesColumns the attribute
(tests/foundation/test_bar.py says which ones still list fields by hand).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Aggregate = Literal["first", "max", "min", "last", "sum"]
#: What a value must satisfy at ingest on its own; rules across columns stay in
#: workers.validation because they are not properties of one column.
Rule = Literal["positive", "non_negative"]

#: The bar's key columns, in storage order.
KEY_COLUMNS: tuple[str, ...] = ("symbol_id", "timeframe", "ts")


@dataclass(frozen=True, slots=True)
class BarField:
    """One value column of `bars`."""

    name: str  # column name in the table, frames, COPY and CSV files
    sql_type: str  # PostgreSQL type; workers.pgcopy maps it to a binary COPY field
    graphql: str  # field name on the GraphQL Bar types
    aggregate: Aggregate  # how buckets resampled from finer bars combine it
    description: str  # of the field on the GraphQL Bar type
    series_description: str  # of its column on the GraphQL BarSeries type
    rule: Rule | None = None  # ingest check on the value alone
    aliases: tuple[str, ...] = ()  # other source-file header names accepted for it


_F8 = "double precision"

#: The descriptions are the GraphQL schema's (schema.graphql must not change with this file).
BAR_FIELDS: tuple[BarField, ...] = (
    BarField("open", _F8, "open", "first", "First trade price in the bar.",
             "Open prices, aligned with `time`.", "positive", ("o",)),
    BarField("high", _F8, "high", "max", "Highest trade price in the bar.",
             "High prices, aligned with `time`.", "positive", ("h",)),
    BarField("low", _F8, "low", "min", "Lowest trade price in the bar.",
             "Low prices, aligned with `time`.", "positive", ("l",)),
    BarField("close", _F8, "close", "last", "Last trade price in the bar.",
             "Close prices, aligned with `time`.", "positive", ("c",)),
    BarField("volume", _F8, "volume", "sum", "Traded volume (a float: crypto trades in fractions).",
             "Volumes, aligned with `time`.", "non_negative", ("vol", "v")),
)  # fmt: skip


def bar_field(name: str) -> BarField:
    """The description of the value column `name`."""
    return next(f for f in BAR_FIELDS if f.name == name)


def value_columns(fields: tuple[BarField, ...] = BAR_FIELDS) -> tuple[str, ...]:
    """The value column names, in storage order."""
    return tuple(f.name for f in fields)


def columns_sql(prefix: str = "", fields: tuple[BarField, ...] = BAR_FIELDS) -> str:
    """`open, high, …` (each name qualified by `prefix`, e.g. "b." or "EXCLUDED.")."""
    return ", ".join(f"{prefix}{f.name}" for f in fields)


def aggregate_sql(field: BarField, prefix: str = "", order: str = "ts", alias: bool = True) -> str:
    """The resampling aggregate of one column over rows in time column `order`.

    first/last as the first element of an ordered array_agg: PostgreSQL has no first() or
    last() aggregate, and these are the expressions the statements were written with by hand,
    so their plans (tests/api/test_page_plans.py) stay as they were.
    """
    col = f"{prefix}{field.name}"
    agg = field.aggregate
    if agg == "first":
        expr = f"(array_agg({col} ORDER BY {prefix}{order}))[1]"
    elif agg == "last":
        expr = f"(array_agg({col} ORDER BY {prefix}{order} DESC))[1]"
    else:
        expr = f"{agg}({col})"
    return f"{expr} AS {field.name}" if alias else expr


def resample_sql(prefix: str = "", fields: tuple[BarField, ...] = BAR_FIELDS) -> str:
    """The select list that combines base rows into one bucket, one aggregate per column."""
    return ", ".join(aggregate_sql(f, prefix) for f in fields)


def upsert_set_sql(fields: tuple[BarField, ...] = BAR_FIELDS) -> str:
    """`open = EXCLUDED.open, …` for ON CONFLICT DO UPDATE."""
    return ", ".join(f"{f.name} = EXCLUDED.{f.name}" for f in fields)
