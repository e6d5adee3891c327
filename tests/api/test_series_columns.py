"""Series read as numpy columns (binary COPY, loaders/columns.py) against the array_agg path.

The columns path and the old one (PostgreSQL aggregating arrays, decoded into Python lists)
must answer the same `series`: compared as parsed JSON with floats equal. Number formatting
need not be byte-identical for that (both use orjson here, and the suite's fast-path check
compares the fast and normal execution byte for byte anyway).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from core.intervals import Interval
from loaders.bars import SeriesLoader
from loaders.codec import decode_series, encode_series
from loaders.columns import Column
from loaders.rows import SeriesColumns
from loaders.sql import parse_binary_copy
from tests.api.helpers import app_client, post

SERIES = """query($t: String!, $i: Interval!, $n: Int!, $session: Session,
                 $alignment: Alignment! = SESSION, $adjustment: Adjustment! = RAW,
                 $fill: Fill! = NONE, $from: DateTime, $to: DateTime) {
  symbol(ticker: $t) {
    series(interval: $i, maxPoints: $n, session: $session, alignment: $alignment,
           adjustment: $adjustment, fill: $fill, from: $from, to: $to) {
      interval requestedInterval time open high low close volume closed filled
      prices { open high low close }
    }
  }
}"""

CASES: list[dict[str, Any]] = [
    {"t": "ACME", "i": "M1", "n": 100_000},
    {"t": "ACME", "i": "M5", "n": 100_000},
    {"t": "GLOBX", "i": "M1", "n": 300},  # coarsened to fit
    {"t": "UMBRL", "i": "M1", "n": 100_000},
    {"t": "UMBRL", "i": "H1", "n": 100_000, "session": "REGULAR"},
    {"t": "UMBRL", "i": "M30", "n": 100_000, "session": "EXTENDED", "alignment": "SESSION"},
    {"t": "UMBRL", "i": "M15", "n": 100_000, "session": "ALL", "alignment": "UTC"},
    {"t": "AAPL", "i": "D1", "n": 100_000, "adjustment": "ALL"},
    {"t": "AAPL", "i": "W1", "n": 100_000, "adjustment": "SPLIT"},
    {"t": "GOOG", "i": "MN1", "n": 100_000},
    {"t": "UMBRL", "i": "H1", "n": 100_000, "fill": "NULL"},
    {"t": "COINX", "i": "H4", "n": 100_000, "fill": "PREVIOUS"},
    {"t": "ACME", "i": "M1", "n": 1000, "from": "2100-01-01T00:00:00Z"},  # empty
]


def _answers(client: TestClient) -> list[Any]:
    out = []
    for variables in CASES:
        body = post(client, SERIES, variables)
        assert "errors" not in body, body
        out.append(body["data"])
    return out


@pytest.fixture(scope="module")
def both_paths(database_url: str) -> Iterator[tuple[list[Any], list[Any]]]:
    # No field cache: each request reads PostgreSQL through the path under test.
    with app_client(database_url, cache_enabled=False) as client:
        columns = _answers(client)
    patch = pytest.MonkeyPatch()

    async def no_columns(*args: Any) -> None:
        return None  # as for rows the binary layout does not fit: the array_agg path answers

    patch.setattr(SeriesLoader, "_read_columns", no_columns)
    try:
        with app_client(database_url, cache_enabled=False) as client:
            lists = _answers(client)
    finally:
        patch.undo()
    yield columns, lists


@pytest.mark.parametrize("n", range(len(CASES)))
def test_columns_path_answers_as_the_array_agg_path(
    both_paths: tuple[list[Any], list[Any]], n: int
) -> None:
    columns, lists = both_paths
    assert columns[n] == lists[n]  # parsed JSON; floats compare by value
    series = columns[n]["symbol"]["series"]
    if CASES[n].get("from") is None:
        assert len(series["time"]) > 0


def test_many_symbols_in_one_batch(database_url: str) -> None:
    """Several symbols' series in one statement come back split at the right rows."""
    fields = "series(interval: M5, maxPoints: 100000) { time close }"
    tickers = ("ACME", "GLOBX", "COINX", "ACME")
    aliases = " ".join(f't{i}: symbol(ticker: "{t}") {{ {fields} }}' for i, t in enumerate(tickers))
    query = "{ " + aliases + " }"
    with app_client(database_url, cache_enabled=False) as client:
        together = post(client, query)["data"]
        for i, t in enumerate(tickers):
            alone = post(client, SERIES, {"t": t, "i": "M5", "n": 100_000})["data"]
            assert together[f"t{i}"]["series"]["time"] == alone["symbol"]["series"]["time"]
            assert together[f"t{i}"]["series"]["close"] == alone["symbol"]["series"]["close"]


def _series(columns: bool) -> SeriesColumns:
    ts = [datetime(2024, 1, 2, 9, 30, i, 5 * i, tzinfo=UTC) for i in range(5)]
    values = [[1.5 + i + j / 8 for i in range(5)] for j in range(5)]
    closed = [True, True, True, True, False]
    if not columns:
        return SeriesColumns(Interval.M1, ts, *values, closed)  # type: ignore[call-arg]
    return SeriesColumns(  # type: ignore[call-arg]
        Interval.M1,
        Column.of(ts, "M"),
        *(Column.of(v, "f") for v in values),
        Column.of(closed, "b"),
    )


def test_cache_encoding_is_unchanged_and_round_trips() -> None:
    """Entries written before the columns existed still decode, to the same values."""
    as_lists, as_columns = _series(False), _series(True)
    assert encode_series(as_columns) == encode_series(as_lists)
    decoded = decode_series(encode_series(as_lists))
    for name in ("ts", "open", "high", "low", "close", "volume", "closed"):
        assert list(getattr(decoded, name)) == list(getattr(as_lists, name)), name


def test_column_reads_as_python_values_and_writes_graphql_json() -> None:
    cols = _series(True)
    assert cols.ts[1] == datetime(2024, 1, 2, 9, 30, 1, 5, tzinfo=UTC)
    assert cols.ts.at(4) == cols.ts[4] and cols.open.at(2) == cols.open[2] == 3.5
    assert [type(v) for v in cols.closed] == [bool] * 5
    assert orjson.loads(cols.ts.json() or b"") == [t.isoformat() for t in cols.ts]
    assert orjson.loads(cols.open.json() or b"") == list(cols.open)
    assert Column(np.array([1.0, np.nan])).json() is None  # the normal path reports it
    assert Column(np.array([1.0, np.inf])).json() is None


def test_binary_copy_layout_is_checked() -> None:
    header = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
    row = b"\x00\x02" + b"\x00\x00\x00\x08" + (7).to_bytes(8, "big") + b"\x00\x00\x00\x08"
    good = header + row + np.array([2.5], ">f8").tobytes() + b"\xff\xff"
    idx, values = parse_binary_copy(good, "if")  # type: ignore[misc]
    assert idx.tolist() == [7] and values.tolist() == [2.5]
    null = header + b"\x00\x02" + b"\x00\x00\x00\x08" + (7).to_bytes(8, "big") + b"\xff\xff\xff\xff"
    assert parse_binary_copy(null + b"\xff\xff", "if") is None  # a NULL: not this layout
    assert parse_binary_copy(b"not a copy", "if") is None


def test_a_stored_series_that_fits_is_read_once_without_a_count(database_url: str) -> None:
    """At a stored interval the capped series read decides whether `maxPoints` fits (no
    bucket count); one past it, the answer moves up the ladder as before."""
    from tests.api.helpers import count_statements

    with app_client(database_url, cache_enabled=False) as client:
        everything = post(client, SERIES, {"t": "ACME", "i": "M1", "n": 200_000})["data"]
        n = len(everything["symbol"]["series"]["time"])
        assert n > 1000
        with count_statements(client) as statements:
            exact = post(client, SERIES, {"t": "ACME", "i": "M1", "n": n})["data"]
        assert exact == everything
        assert not [s for s in statements if "count(" in s], statements
        fewer = post(client, SERIES, {"t": "ACME", "i": "M1", "n": n - 1})["data"]
        series = fewer["symbol"]["series"]
        assert series["interval"] != "M1" and series["requestedInterval"] == "M1"
        assert 0 < len(series["time"]) <= n - 1
        # The coarser interval equals what asking for it directly answers.
        direct = post(client, SERIES, {"t": "ACME", "i": series["interval"], "n": n - 1})
        assert direct["data"]["symbol"]["series"]["time"] == series["time"]
