"""File ingest into a real database: CSV and Parquet, rejects, idempotence, revisions."""

from __future__ import annotations

import gzip
from pathlib import Path

import asyncpg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.settings import Settings
from workers.file_ingest import RejectWriter, ingest_file
from workers.validation import NotOhlcvError


def minute_bars(ticker: str, n: int, start: str = "2024-03-04 14:30") -> pd.DataFrame:
    """n deterministic, valid one-minute bars."""
    close = [100.0 + i * 0.25 for i in range(n)]
    return pd.DataFrame(
        {
            "ticker": ticker,
            "time": pd.date_range(start, periods=n, freq="min", tz="UTC"),
            "open": [c - 0.1 for c in close],
            "high": [c + 0.5 for c in close],
            "low": [c - 0.5 for c in close],
            "close": close,
            "volume": [float(1000 + i) for i in range(n)],
        }
    )


async def stored(conn: asyncpg.Connection, ticker: str) -> pd.DataFrame:
    rows = await conn.fetch(
        "SELECT b.ts, b.open, b.high, b.low, b.close, b.volume, b.xmin::text::bigint AS xmin "
        "FROM bars b JOIN symbols s ON s.id = b.symbol_id WHERE s.ticker = $1 ORDER BY b.ts",
        ticker,
    )
    return pd.DataFrame([dict(r) for r in rows])


async def test_csv_good_rows_land_and_rejects_are_reported_by_line(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "bars.csv"
    lines = ["Symbol,Date,Open,High,Low,Close,Volume"]
    for i in range(10):
        lines.append(f"acme,2024-03-04 14:{30 + i}:00,10,11,9,10.5,{100 + i}")
    lines[4] = "acme,2024-03-04 14:33:00,10,9.5,9,10.5,100"  # line 5: high too low
    lines.insert(8, "")  # a blank line 9 is skipped but still counted
    lines[10] = "acme,yesterday,10,11,9,10.5,100"  # line 11
    path.write_text("\n".join(lines) + "\n")
    reject_path = tmp_path / "rejects.csv"
    rejects = RejectWriter(reject_path)

    # Batches of 3 rows: line numbers must carry across chunks.
    report = await ingest_file(conn, path, timeframe="m1", batch_rows=3, rejects=rejects, tz="UTC")
    rejects.close()

    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (10, 8, 2)
    assert report.rows_written == 8
    assert report.examples == [(5, "high below max(open, close)"), (11, "unparseable time")]
    saved = pd.read_csv(reject_path)
    assert list(saved["line"]) == [5, 11]
    assert list(saved["reason"]) == ["high below max(open, close)", "unparseable time"]
    assert list(saved["time"]) == ["2024-03-04 14:33:00", "yesterday"]
    bars = await stored(conn, "ACME")
    assert len(bars) == 8
    assert pd.Timestamp("2024-03-04 14:33", tz="UTC") not in set(bars["ts"])
    assert await conn.fetchval("SELECT count(*) FROM symbols") == 1


async def test_parquet_in_chunks_with_zone_aware_times(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    frame = minute_bars("GLOBX", 2_500)
    frame["time"] = frame["time"].dt.tz_convert("Europe/Berlin")
    frame.loc[1_234, "low"] = -1.0  # row 1235
    path = tmp_path / "bars.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=700)

    report = await ingest_file(conn, path, timeframe="M1", batch_rows=1_000)

    assert (report.rows_read, report.rows_rejected) == (2_500, 1)
    assert report.examples == [(1_235, "low is not positive")]
    bars = await stored(conn, "GLOBX")
    assert len(bars) == 2_499
    expected = minute_bars("GLOBX", 2_500).drop(index=1_234)
    assert list(bars["ts"]) == list(expected["time"])
    assert list(bars["close"]) == list(expected["close"])


async def test_gzipped_semicolon_csv_with_a_ticker_option(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "bars.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("timestamp;o;h;l;c;v\n2024-03-04T09:30:00;10;11;9;10.5;5\n")
    report = await ingest_file(conn, path, timeframe="M1", ticker="initech", tz="America/New_York")
    assert report.rows_written == 1
    bars = await stored(conn, "INITECH")
    assert list(bars["ts"]) == [pd.Timestamp("2024-03-04 14:30", tz="UTC")]


@pytest.mark.parametrize(
    "content",
    [
        b"name,price,qty\nwidget,3,4\n",
        b'{"bars": [{"t": 1, "o": 2}]}\n',
        b"\x00\x01\x02\xff\xfe binary garbage",
        b"",
    ],
    ids=["other-table", "json", "binary", "empty"],
)
async def test_a_file_that_is_not_ohlcv_fails_and_writes_nothing(
    conn: asyncpg.Connection, tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    with pytest.raises(NotOhlcvError, match=str(path)):
        await ingest_file(conn, path, timeframe="D1")
    for table in ("symbols", "bars", "bar_changes"):
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0


async def test_re_running_an_ingest_changes_nothing(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "bars.csv"
    minute_bars("ACME", 500).to_csv(path, index=False)
    first = await ingest_file(conn, path, timeframe="M1", batch_rows=200)
    before = await stored(conn, "ACME")
    changes = await conn.fetchval("SELECT count(*) FROM bar_changes")

    again = await ingest_file(conn, path, timeframe="M1", batch_rows=200)

    assert (first.rows_written, again.rows_written, again.rows_accepted) == (500, 0, 500)
    after = await stored(conn, "ACME")
    pd.testing.assert_frame_equal(before, after)  # xmin included: no row was rewritten
    assert await conn.fetchval("SELECT count(*) FROM bar_changes") == changes
    assert await conn.fetchval("SELECT count(*) FROM symbols") == 1


async def test_revised_bars_overwrite_and_unchanged_ones_are_untouched(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "bars.csv"
    original = minute_bars("ACME", 300)
    original.to_csv(path, index=False)
    await ingest_file(conn, path, timeframe="M1")
    before = await stored(conn, "ACME")

    revised = original.copy()
    revised.loc[[10, 150, 299], "close"] += 0.2  # still within high/low
    revised.loc[[10, 150, 299], "volume"] = 7.0
    more = minute_bars("ACME", 5, start="2024-03-04 19:30")  # plus 5 new bars after them
    pd.concat([revised, more]).to_csv(path, index=False)
    report = await ingest_file(conn, path, timeframe="M1")

    assert report.rows_written == 3 + 5
    after = await stored(conn, "ACME")
    assert len(after) == 305
    changed = after["ts"].isin(original.loc[[10, 150, 299], "time"])
    assert list(after.loc[changed, "volume"]) == [7.0, 7.0, 7.0]
    assert list(after.loc[changed, "close"]) == list(revised.loc[[10, 150, 299], "close"])
    untouched = after.iloc[:300][~changed.iloc[:300]]
    assert list(untouched["xmin"]) == list(before.loc[untouched.index, "xmin"])
    change = await conn.fetchrow(
        "SELECT first_ts, last_ts, rows FROM bar_changes ORDER BY id DESC LIMIT 1"
    )
    assert change["rows"] == 8
    assert change["first_ts"] == original.loc[10, "time"]
    assert change["last_ts"] == more["time"].iloc[-1]


async def test_batches_over_several_connections_keep_each_series_in_file_order(
    conn: asyncpg.Connection, fresh: Settings, tmp_path: Path
) -> None:
    """Batches of different tickers are written at once; a batch holding a ticker of a
    batch in flight waits for it, so a row repeated later in the file still wins and each
    series' change ids follow the file."""
    first = minute_bars("ACME", 300)
    revision = minute_bars("ACME", 300)
    revision["volume"] += 1_000.0  # every ACME bar again, later in the file
    path = tmp_path / "bars.csv"
    pd.concat(
        [first, minute_bars("BETA", 300), minute_bars("GAMMA", 300), revision, first.head(100)]
    ).to_csv(path, index=False)
    more = [await asyncpg.connect(fresh.asyncpg_dsn) for _ in range(2)]
    try:
        report = await ingest_file(
            conn, path, timeframe="M1", batch_rows=100, more_connections=more
        )
    finally:
        for c in more:
            await c.close()

    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (1_300, 1_300, 0)
    assert report.rows_written == 300 + 300 + 300 + 300 + 100
    acme = await stored(conn, "ACME")
    # The last 100 rows (the first version of bars 0-99) came last in the file: they win.
    assert list(acme["volume"]) == list(first["volume"].iloc[:100]) + list(
        revision["volume"].iloc[100:]
    )
    for ticker in ("BETA", "GAMMA"):
        assert len(await stored(conn, ticker)) == 300
    # ACME's changes in file order: 3 batches of the first version, 3 of the revision, 1 more.
    changes = await conn.fetch(
        "SELECT c.first_ts, c.rows FROM bar_changes c JOIN symbols s ON s.id = c.symbol_id "
        "WHERE s.ticker = 'ACME' ORDER BY c.id"
    )
    starts = [first["time"].iloc[i] for i in (0, 100, 200, 0, 100, 200, 0)]
    assert [c["first_ts"] for c in changes] == starts
    assert [c["rows"] for c in changes] == [100] * 7
