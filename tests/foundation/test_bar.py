"""The bar is described once (core.bar): a new value column reaches every derived part.

`VWAP` is a hypothetical column added to the description; the builders take the field
tuple, so no migration is needed to see what each part would do with it. The parts still
written by hand (the GraphQL types' attributes, BarRow, SeriesColumns) are checked against
the description instead, so forgetting one fails here rather than at run time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator

import asyncpg
import numpy as np
import pandas as pd

from core.bar import BAR_FIELDS, KEY_COLUMNS, BarField, aggregate_sql
from core.intervals import Interval
from graphql_api.live import fast, reads
from graphql_api.types.bars import Bar, BarSeries
from loaders import bars as bar_loaders
from loaders.rows import BarRow, SeriesColumns
from workers import export, pgcopy, upsert, validation
from workers.providers import BAR_COLUMNS as PAGE_COLUMNS

VWAP = BarField(
    "vwap",
    "double precision",
    "vwap",
    "last",
    "Volume-weighted average price.",
    "VWAPs, aligned with `time`.",
    "positive",
    ("average",),
)
WITH_VWAP = (*BAR_FIELDS, VWAP)
#: Windows of a resampled and a stored page (UTC grid: the statements of before calendars).
_RESAMPLED_WINDOW = bar_loaders.BarWindow(Interval.H1, Interval.M1, True)
_STORED_WINDOW = bar_loaders.BarWindow(Interval.M1, Interval.M1, True)
NAMES = tuple(f.name for f in BAR_FIELDS)


def test_the_description_is_the_stored_columns() -> None:
    from core.tables import bars

    assert tuple(c.name for c in bars.columns) == (*KEY_COLUMNS, *NAMES)
    assert NAMES == ("open", "high", "low", "close", "volume")
    assert [f.aggregate for f in BAR_FIELDS] == ["first", "max", "min", "last", "sum"]


def test_hand_written_records_and_types_follow_the_description() -> None:
    assert BarRow._fields == ("ts", *NAMES, "closed")
    assert [f.name for f in dataclasses.fields(SeriesColumns)] == [
        "interval",
        "ts",
        *NAMES,
        "closed",
    ]
    graphql = [f.graphql for f in BAR_FIELDS]
    for cls in (Bar, BarSeries):
        names = [f.python_name for f in cls.__strawberry_definition__.fields]  # type: ignore[attr-defined]
        assert [n for n in names if n in graphql] == graphql
    assert frozenset({"time", *graphql, "closed", "filled", "__typename"}) == fast._BAR_FIELDS


def test_resampling_sql_aggregates_the_new_column() -> None:
    last = "(array_agg(r.vwap ORDER BY r.ts DESC))[1] AS vwap"
    assert aggregate_sql(VWAP, "r.") == last
    resampled = bar_loaders.page_sql(_RESAMPLED_WINDOW, "", WITH_VWAP)
    assert last in resampled
    assert "g.volume, g.vwap, g.fetched" in resampled
    assert "ts, open, high, low, close, volume, vwap FROM bars" in resampled
    stored = bar_loaders.page_sql(_STORED_WINDOW, "", WITH_VWAP)
    assert "b.volume, b.vwap\n" in stored and "volume, vwap FROM bars" in stored
    assert "array_agg(vwap) AS vwap" in bar_loaders.series_sql("x", WITH_VWAP)
    assert "c.volume, c.vwap\n" in bar_loaders.series_sql("x", WITH_VWAP)
    chart = bar_loaders.bucket_rows_sql(Interval.M1, Interval.H1, "true", WITH_VWAP)
    assert "(array_agg(vwap ORDER BY ts DESC))[1] AS vwap" in chart
    live = reads.live_sql(WITH_VWAP)
    assert "b.volume, b.vwap, b.fetched" in live["meta"]
    for name in ("touched_resampled", "replay_resampled"):
        assert last in live[name] and "volume, vwap FROM bars" in live[name]
    for name in ("touched_stored", "replay_stored"):
        assert "volume, vwap, 0::bigint AS fetched" in live[name]


def test_each_aggregate_has_its_sql() -> None:
    expected = {
        "first": "(array_agg(r.x ORDER BY r.ts))[1]",
        "last": "(array_agg(r.x ORDER BY r.ts DESC))[1]",
        "max": "max(r.x)",
        "min": "min(r.x)",
        "sum": "sum(r.x)",
    }
    for agg, sql in expected.items():
        field = dataclasses.replace(VWAP, name="x", aggregate=agg)  # type: ignore[arg-type]
        assert aggregate_sql(field, "r.", alias=False) == sql


def test_the_sql_of_today_is_unchanged() -> None:
    """The generated statements are the hand-written ones (plans and statement counts rest
    on them: tests/api/test_page_plans.py)."""
    squash = lambda s: re.sub(r"\s+", " ", s).strip()  # noqa: E731
    assert squash(bar_loaders.page_sql(_RESAMPLED_WINDOW, "{bounds}")) == squash(
        """SELECT k.idx, g.bucket, g.open, g.high, g.low, g.close, g.volume, g.fetched
        FROM unnest($1::int[], $2::timestamptz[], $3::timestamptz[], $5::int[])
             WITH ORDINALITY AS k(sid, lo, hi, lim, idx)
        CROSS JOIN LATERAL (
            SELECT r.bucket, (array_agg(r.open ORDER BY r.ts))[1] AS open, max(r.high) AS high,
                   min(r.low) AS low, (array_agg(r.close ORDER BY r.ts DESC))[1] AS close,
                   sum(r.volume) AS volume, sum(count(*)) OVER () AS fetched
            FROM (
                SELECT {bucket} AS bucket, ts, open, high, low, close, volume FROM bars
                WHERE symbol_id = k.sid AND timeframe = $4{bounds}
                ORDER BY ts {order} LIMIT k.lim
            ) r
            GROUP BY r.bucket
        ) g
        ORDER BY k.idx, g.bucket {order}""".format(
            bucket=bar_loaders.bucket_sql(Interval.H1), bounds="{bounds}", order="DESC"
        )
    )
    assert squash(upsert._UPSERT_STAGED).startswith(
        squash(
            """WITH written AS (
            INSERT INTO bars AS b (symbol_id, timeframe, ts, open, high, low, close, volume)
            SELECT symbol_id, timeframe, ts, open, high, low, close, volume FROM _stage_bars
            ON CONFLICT (symbol_id, timeframe, ts) DO UPDATE
                SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
                    close = EXCLUDED.close, volume = EXCLUDED.volume"""
        )
    )


def test_copy_upsert_validation_export_and_pages_take_the_new_column() -> None:
    assert (*KEY_COLUMNS, *NAMES) == pgcopy.BAR_COLUMNS
    insert = pgcopy.insert_row_dtype(2, WITH_VWAP)
    assert insert.names[-2:] == ("vwap_len", "vwap") and insert["vwap"] == np.dtype(">f8")
    assert insert.itemsize == pgcopy.insert_row_dtype(2).itemsize + 12
    keyed = pgcopy.keyed_row_dtype(WITH_VWAP)
    assert keyed.names[-1] == "vwap"

    staged = upsert.upsert_staged_sql(WITH_VWAP)
    assert "close, volume, vwap)" in staged and "volume, vwap FROM _stage_bars" in staged
    assert "vwap = EXCLUDED.vwap" in staged
    assert "(b.open, b.high, b.low, b.close, b.volume, b.vwap)" in staged
    assert "EXCLUDED.volume, EXCLUDED.vwap)" in staged
    assert "b.volume, b.vwap\n" in upsert.read_stored_sql(WITH_VWAP)

    aliases = validation.aliases(WITH_VWAP)
    assert aliases["vwap"] == ("vwap", "average")
    assert list(aliases)[: len(WITH_VWAP) + 1] == ["time", *NAMES, "vwap"]
    assert validation.clean_columns(WITH_VWAP) == ("ticker", "ts", *NAMES, "vwap")

    assert export.export_columns(WITH_VWAP) == ("ticker", "time", *NAMES, "vwap")
    assert export.export_select_sql(WITH_VWAP).endswith("b.volume, b.vwap")
    # The export's header is what the file ingest maps back, column for column.
    for column in export.export_columns(WITH_VWAP)[2:]:
        assert column in aliases[column]

    assert ("time", *NAMES) == PAGE_COLUMNS
    from workers.file_ingest import REJECT_COLUMNS

    assert ("file", "line", "reason", "ticker", "time", *NAMES) == REJECT_COLUMNS


def test_validation_applies_each_columns_rule() -> None:
    raw = pd.DataFrame(
        {
            "ticker": ["A", "A", "A"],
            "time": ["2024-01-02", "2024-01-03", "2024-01-04"],
            "open": [1.0, 0.0, 1.0],
            "high": [2.0, 2.0, 2.0],
            "low": [0.5, 0.5, 0.5],
            "close": [1.5, 1.5, 1.5],
            "vol": [10.0, 10.0, -1.0],
        }
    )
    columns = validation.map_columns(list(raw.columns))
    assert columns.values["volume"] == "vol"
    checked = validation.validate_chunk(raw, columns, np.arange(2, 5))
    assert list(checked.bars.columns) == list(validation.CLEAN_COLUMNS)
    assert len(checked.bars) == 1
    assert list(checked.rejected["reason"]) == ["open is not positive", "volume is negative"]


def test_a_vwap_column_round_trips_through_postgresql(pg_admin_url: str) -> None:
    """The generated COPY layout and resampling SQL against a real table with the column."""

    async def run() -> None:
        conn = await asyncpg.connect(pg_admin_url)
        try:
            cols = ", ".join(f"{f.name} {f.sql_type} NOT NULL" for f in WITH_VWAP)
            # A temporary `bars` shadows any real one for this session only.
            await conn.execute(
                "CREATE TEMP TABLE bars (symbol_id int NOT NULL, timeframe text NOT NULL, "
                f"ts timestamptz NOT NULL, {cols})"
            )
            n = 4
            rows = np.empty(n, dtype=pgcopy.insert_row_dtype(2, WITH_VWAP))
            rows["count"] = len(KEY_COLUMNS) + len(WITH_VWAP)
            rows["symbol_id_len"], rows["symbol_id"] = 4, 1
            rows["timeframe_len"], rows["timeframe"] = 2, b"M1"
            start = pd.Timestamp("2024-01-02 10:00", tz="UTC").to_pydatetime()
            rows["ts_len"] = 8
            rows["ts"] = pgcopy.to_pg_us(start) + np.arange(n) * 60_000_000
            for i, field in enumerate(WITH_VWAP):
                rows[f"{field.name}_len"] = 8
                rows[field.name] = np.arange(n) + 10.0 * (i + 1)

            async def payload() -> AsyncIterator[bytes]:
                yield pgcopy._COPY_HEADER + rows.tobytes() + pgcopy._COPY_TRAILER

            await conn.copy_to_table(
                "bars",
                source=payload(),
                columns=[*KEY_COLUMNS, *(f.name for f in WITH_VWAP)],
                format="binary",
            )
            from core.intervals import Interval

            sql = bar_loaders.bucket_rows_sql(Interval.M1, Interval.M5, "true", WITH_VWAP)
            got = await conn.fetchrow(sql)
            assert got is not None
            # open first, high max, low min, close last, volume sum, vwap last.
            assert tuple(got)[1:] == (10.0, 23.0, 30.0, 43.0, 50 + 51 + 52 + 53, 63.0)
        finally:
            await conn.close()

    asyncio.run(run())
