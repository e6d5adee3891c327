"""Column mapping and row validation: every rejection reason, reported by line number."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest

from workers.validation import NotOhlcvError, map_columns, validate_chunk


def check(csv: str, **options: object) -> tuple[pd.DataFrame, dict[int, str]]:
    """Validate a CSV text as the file ingest would; rejects as {line: reason}."""
    raw = pd.read_csv(io.StringIO(csv), keep_default_na=False, na_values=[""], dtype=str)
    columns = map_columns(raw.columns, ticker_given="ticker" in options)
    lines = np.arange(2, 2 + len(raw), dtype=np.int64)
    result = validate_chunk(raw, columns, lines, **options)  # type: ignore[arg-type]
    return result.bars, dict(zip(result.rejected["line"], result.rejected["reason"], strict=True))


HEADER = "ticker,time,open,high,low,close,volume\n"


def test_each_rejection_reason_with_its_line_number() -> None:
    bars, rejects = check(
        HEADER
        + "ACME,2024-03-04 14:30,10,11,9,10.5,100\n"  # 2: good
        + "ACME,not a time,10,11,9,10.5,100\n"  # 3
        + "ACME,2024-03-04 14:32,-1,11,0.5,10.5,100\n"  # 4
        + "ACME,2024-03-04 14:33,10,10.2,9,10.5,100\n"  # 5: high < close
        + "ACME,2024-03-04 14:34,10,11,10.2,10.5,100\n"  # 6: low > open
        + "ACME,2024-03-04 14:35,10,11,9,10.5,-5\n"  # 7
        + "ACME,2024-03-04 14:30,10,11,9,10.5,100\n"  # 8: repeats line 2
        + "ACME,2024-03-04 14:37,abc,11,9,10.5,100\n"  # 9
        + ",2024-03-04 14:38,10,11,9,10.5,100\n"  # 10
        + "ACME,2024-03-04 14:39,10,11,9,10.5,\n"  # 11
        + "ACME,2024-03-04 14:40,10,11,9,10.5,7\n"  # 12: good
    )
    assert rejects == {
        3: "unparseable time",
        4: "open is not positive",
        5: "high below max(open, close)",
        6: "low above min(open, close)",
        7: "volume is negative",
        8: "duplicate time (first on line 2)",
        9: "open is not a number",
        10: "missing ticker",
        11: "volume is not a number",
    }
    assert list(bars["ts"]) == [
        pd.Timestamp("2024-03-04 14:30", tz="UTC"),
        pd.Timestamp("2024-03-04 14:40", tz="UTC"),
    ]
    assert list(bars["volume"]) == [100.0, 7.0]


def test_tickers_that_cannot_be_stored_or_typed_are_rejected() -> None:
    bars, rejects = check(
        HEADER
        + "AC\x00ME,2024-03-04,10,11,9,10,1\n"  # 2: NUL, which PostgreSQL cannot store
        + "AC\u200bME,2024-03-04,10,11,9,10,1\n"  # 3: zero-width space
        + f"{'X' * 33},2024-03-04,10,11,9,10,1\n"  # 4
        + "BRK.B,2024-03-04,10,11,9,10,1\n"  # 5: good
    )
    assert rejects == {
        2: "ticker has unprintable characters",
        3: "ticker has unprintable characters",
        4: "ticker too long",
    }
    assert list(bars["ticker"]) == ["BRK.B"]


def test_a_row_breaking_several_rules_gets_every_reason() -> None:
    _, rejects = check(HEADER + "ACME,2024-03-04,10,9,11,10,-1\n")
    assert rejects[2].split("; ") == [
        "high below max(open, close)",
        "low above min(open, close)",
        "volume is negative",
    ]


def test_a_bad_first_row_does_not_shadow_a_good_duplicate() -> None:
    bars, rejects = check(
        HEADER + "ACME,2024-03-04,10,9,9,10,1\n" + "ACME,2024-03-04,10,11,9,10,1\n"
    )
    assert rejects == {2: "high below max(open, close)"}
    assert list(bars["high"]) == [11.0]


def test_columns_are_mapped_by_name_case_insensitively_in_any_order() -> None:
    bars, rejects = check("V,C,L,H,O,Timestamp,SYMBOL\n5,10,9,11,10,2024-03-04T10:00:00Z,acme\n")
    assert rejects == {}
    row = bars.iloc[0]
    assert (row["ticker"], row["open"], row["high"], row["low"], row["close"], row["volume"]) == (
        "ACME",
        10.0,
        11.0,
        9.0,
        10.0,
        5.0,
    )


def test_naive_times_are_local_to_the_given_zone_and_offsets_win() -> None:
    bars, rejects = check(
        HEADER
        + "ACME,2024-03-04 09:30,10,11,9,10,1\n"  # EST: UTC-5
        + "ACME,2024-07-01 09:30,10,11,9,10,1\n"  # EDT: UTC-4
        + "ACME,2024-07-02T09:30:00+02:00,10,11,9,10,1\n"  # offset in the data
        + "ACME,2024-03-10 02:30,10,11,9,10,1\n"  # does not exist in New York
        + "ACME,2024-11-03 01:30,10,11,9,10,1\n",  # happens twice in New York
        tz="America/New_York",
    )
    assert list(bars["ts"]) == [
        pd.Timestamp("2024-03-04 14:30", tz="UTC"),
        pd.Timestamp("2024-07-01 13:30", tz="UTC"),
        pd.Timestamp("2024-07-02 07:30", tz="UTC"),
    ]
    reason = "ambiguous or nonexistent local time in America/New_York"
    assert rejects == {5: reason, 6: reason}


def test_epoch_milliseconds_and_a_ticker_option() -> None:
    raw = pd.DataFrame({"t": [1_709_251_200_000, 1_709_251_260_000], "o": [1.0, 2.0]})
    raw = raw.assign(h=3.0, l=0.5, c=1.5, v=10.0)
    columns = map_columns(raw.columns, ticker_given=True)
    result = validate_chunk(raw, columns, np.array([1, 2]), ticker="btcusdt")
    assert result.rejected.empty
    assert list(result.bars["ticker"]) == ["BTCUSDT", "BTCUSDT"]
    assert list(result.bars["ts"]) == [
        pd.Timestamp("2024-03-01 00:00", tz="UTC"),
        pd.Timestamp("2024-03-01 00:01", tz="UTC"),
    ]


@pytest.mark.parametrize(
    ("names", "missing"),
    [
        (["name", "price", "qty"], "time, open, high, low, close, volume, ticker (or give one)"),
        (["time", "open", "high", "low", "close", "ticker"], "volume"),
        (["time", "open", "high", "low", "close", "volume"], "ticker (or give one)"),
    ],
)
def test_a_table_that_is_not_ohlcv_is_refused_naming_what_is_missing(
    names: list[str], missing: str
) -> None:
    with pytest.raises(NotOhlcvError, match=re.escape(f"no column for {missing} (columns found")):
        map_columns(names)
