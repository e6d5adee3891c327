"""Limits and input checks: page sizes, paging arguments, time ranges, naive times, series
sizes. Every refusal is a GraphQL error with `extensions.code == "BAD_USER_INPUT"` in an
HTTP 200 answer (the fixtures assert the status), never a server error."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.settings import Settings
from tests.api.helpers import (
    HYPOTHESIS,
    INTERVALS,
    GraphQL,
    app_client,
    assert_same_bars,
    bad_input,
    data_of,
    frame_of_series,
    gql_for,
    ohlcv,
    resample,
    scratch_database,
    store_bars,
    stored_bars,
)
from tests.security.helpers import DEMO_TICKERS

BARS = """query($t: String!, $i: Interval!, $first: Int, $last: Int, $after: String,
                 $before: String, $from: DateTime, $to: DateTime) {
    symbol(ticker: $t) { bars(interval: $i, first: $first, last: $last, after: $after,
        before: $before, from: $from, to: $to) { nodes { time } } } }"""
SYMBOLS = """query($first: Int, $last: Int) { symbols(first: $first, last: $last) {
    nodes { ticker } } }"""
SERIES = """query($t: String!, $i: Interval!, $from: DateTime, $to: DateTime, $max: Int!) {
    symbol(ticker: $t) { series(interval: $i, from: $from, to: $to, maxPoints: $max) {
        interval requestedInterval time open high low close volume closed } } }"""


def bars_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = data_of(result)["symbol"]["bars"]["nodes"]
    return nodes


# --- Page sizes --------------------------------------------------------------------------


def test_default_page_size_limits(gql: GraphQL) -> None:
    """Defaults: 10,000 bars and 500 symbols a page."""
    window = {"from": "2013-01-01T00:00:00Z", "to": "2013-02-01T00:00:00Z"}
    assert len(bars_of(gql(BARS, {"t": "AAPL", "i": "D1", "first": 10_000, **window}))) == 21
    for arg in ("first", "last"):
        message = bad_input(gql(BARS, {"t": "AAPL", "i": "D1", arg: 10_001, **window}))
        assert arg in message and "10000" in message
        assert arg in bad_input(gql(SYMBOLS, {arg: 501}))
    assert len(data_of(gql(SYMBOLS, {"first": 500}))["symbols"]["nodes"]) == len(DEMO_TICKERS)
    # no page size: the default page (100)
    assert len(bars_of(gql(BARS, {"t": "AAPL", "i": "D1"}))) == 100


@pytest.fixture(scope="module")
def tight(settings: Settings) -> Iterator[GraphQL]:
    """An app over the demo data with small, distinct limits."""
    assert settings.database_url
    with app_client(
        settings.database_url,
        max_page_size_bars=7,
        max_page_size_symbols=3,
        default_page_size=5,
        max_series_points=50,
        max_intraday_range_days=5,
    ) as client:
        yield gql_for(client)


def test_configured_page_size_limits_bars_and_symbols_separately(tight: GraphQL) -> None:
    assert len(bars_of(tight(BARS, {"t": "IBM", "i": "D1", "first": 7}))) == 7
    assert len(bars_of(tight(BARS, {"t": "IBM", "i": "W1", "last": 7}))) == 7
    assert len(bars_of(tight(BARS, {"t": "IBM", "i": "D1"}))) == 5  # the default page
    for arg in ("first", "last"):
        assert "7" in bad_input(tight(BARS, {"t": "IBM", "i": "D1", arg: 8}))
        assert "3" in bad_input(tight(SYMBOLS, {arg: 4}))
        assert len(data_of(tight(SYMBOLS, {arg: 3}))["symbols"]["nodes"]) == 3
    # 5 is a legal bar page but not a legal symbol page
    assert len(bars_of(tight(BARS, {"t": "IBM", "i": "D1", "first": 5}))) == 5
    bad_input(tight(SYMBOLS, {"first": 5}))
    # the default symbol page is cut to the maximum, not refused
    assert len(data_of(tight(SYMBOLS))["symbols"]["nodes"]) == 3


def test_nodes_take_at_most_a_symbol_page_of_ids(tight: GraphQL) -> None:
    ids = [
        n["id"]
        for n in data_of(tight("{ symbols(first: 3) { nodes { id } } }"))["symbols"]["nodes"]
    ]
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    assert len(data_of(tight(query, {"ids": ids}))["nodes"]) == 3
    assert "3" in bad_input(tight(query, {"ids": [*ids, ids[0]]}))


# --- Paging arguments ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [-1, -100, -(2**31)])
def test_negative_first_or_last(gql: GraphQL, value: int) -> None:
    for arg in ("first", "last"):
        assert "negative" in bad_input(gql(BARS, {"t": "MSFT", "i": "D1", arg: value}))
        assert "negative" in bad_input(gql(SYMBOLS, {arg: value}))


def test_zero_first_is_an_empty_page(gql: GraphQL) -> None:
    result = gql(
        """{ symbol(ticker: "MSFT") { bars(first: 0) {
        nodes { time } pageInfo { hasNextPage startCursor } } } }"""
    )
    bars = data_of(result)["symbol"]["bars"]
    assert bars["nodes"] == [] and bars["pageInfo"]["startCursor"] is None


def test_first_and_last_together(gql: GraphQL) -> None:
    message = bad_input(gql(BARS, {"t": "MSFT", "i": "D1", "first": 2, "last": 2}))
    assert "first" in message and "last" in message
    bad_input(gql(SYMBOLS, {"first": 2, "last": 2}))


# --- Times -----------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", ["M5", "D1", "MN1"])
def test_from_after_to(gql: GraphQL, interval: str) -> None:
    window = {"from": "2024-03-06T00:00:00Z", "to": "2024-03-05T23:59:59Z"}
    assert "from" in bad_input(gql(BARS, {"t": "ACME", "i": interval, "first": 5, **window}))
    assert "from" in bad_input(gql(SERIES, {"t": "ACME", "i": interval, "max": 10, **window}))
    # an empty range is not an error
    same = {"from": window["from"], "to": window["from"]}
    assert bars_of(gql(BARS, {"t": "ACME", "i": interval, "first": 5, **same})) == []


@pytest.mark.parametrize(
    ("arg", "value"),
    [
        ("from", "2024-03-04T14:30:00"),
        ("to", "2024-03-04T14:30:00"),
        ("from", "2024-03-04T14:30:00.123456"),
        ("to", "2024-03-05"),
    ],
)
def test_naive_times_are_rejected_with_a_message(gql: GraphQL, arg: str, value: str) -> None:
    for query, extra in ((BARS, {"first": 3}), (SERIES, {"max": 10})):
        message = bad_input(gql(query, {"t": "ACME", "i": "M5", arg: value, **extra}))
        assert arg in message and "offset" in message


@pytest.mark.parametrize(
    "value", ["2024-03-04T14:30:00Z", "2024-03-04T09:30:00-05:00", "2024-03-04T20:00:00+05:30"]
)
def test_times_with_an_offset_are_accepted(gql: GraphQL, value: str) -> None:
    bars = bars_of(gql(BARS, {"t": "ACME", "i": "M1", "first": 1, "from": value}))
    # bars are listed newest first: the newest bar of the range that starts at `from`
    assert bars and datetime.fromisoformat(bars[0]["time"]) >= datetime.fromisoformat(value)


@pytest.mark.parametrize(
    "args",
    [
        {"i": "MN1", "from": "9999-12-31T00:00:00Z"},
        {"i": "W1", "to": "9999-12-31T00:00:00Z"},
        {"i": "M5", "from": "9999-12-31T23:58:00Z"},
        {"i": "D1", "to": "0001-01-01T00:00:00Z"},
        {"i": "W1", "from": "0001-01-01T00:00:00+05:00"},
    ],
)
def test_extreme_times_never_cause_a_server_error(gql: GraphQL, args: dict[str, str]) -> None:
    """A valid DateTime far from any bar gives an empty answer or BAD_USER_INPUT."""
    for query, extra in ((BARS, {"first": 3}), (SERIES, {"max": 10})):
        result = gql(query, {"t": "AAPL", **args, **extra})
        if result.get("errors"):
            bad_input(result)


def _forged_cursor(gql: GraphQL, ticker: str, interval: str, when: datetime) -> str:
    """A well-formed bar cursor of `ticker` (bar cursors carry the symbol's id)."""
    node_id = data_of(gql("query($t: String!) { symbol(ticker: $t) { id } }", {"t": ticker}))
    symbol_id = base64.urlsafe_b64decode(node_id["symbol"]["id"]).decode().split(":")[1]
    micros = int(when.timestamp()) * 1_000_000
    raw = f"v2:bar:{symbol_id}:{interval}:{micros}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("interval", "when", "order"),
    [
        ("MN1", datetime(9999, 12, 1, tzinfo=UTC), "OLDEST_FIRST"),
        ("W1", datetime(9999, 12, 27, tzinfo=UTC), "OLDEST_FIRST"),
        ("D1", datetime(9999, 12, 31, tzinfo=UTC), "OLDEST_FIRST"),
        ("MN1", datetime(1, 1, 1, tzinfo=UTC), "NEWEST_FIRST"),
    ],
)
def test_cursor_at_the_end_of_time_never_causes_a_server_error(
    gql: GraphQL, interval: str, when: datetime, order: str
) -> None:
    """A well-formed cursor pointing at the edge of the calendar: an empty page or
    BAD_USER_INPUT."""
    query = """query($i: Interval!, $a: String, $o: BarOrder!) { symbol(ticker: "AAPL") {
        bars(interval: $i, first: 2, after: $a, order: $o) { nodes { time } } } }"""
    cursor = _forged_cursor(gql, "AAPL", interval, when)
    result = gql(query, {"i": interval, "a": cursor, "o": order})
    if result.get("errors"):
        bad_input(result)
    else:
        assert result["data"]["symbol"]["bars"]["nodes"] == []


# --- Series sizes and ranges ----------------------------------------------------------------


@pytest.mark.parametrize("max_points", [0, -1, -(2**31), 51, 5000])
def test_series_max_points_bounds(tight: GraphQL, max_points: int) -> None:
    message = bad_input(tight(SERIES, {"t": "AAPL", "i": "MN1", "max": max_points}))
    assert "maxPoints" in message


def test_series_max_points_at_the_bounds(tight: GraphQL) -> None:
    """January 2013 is one monthly bar: it fits one point."""
    for max_points in (50, 1):
        window = {"from": "2013-01-01T00:00:00Z", "to": "2013-02-01T00:00:00Z"}
        series = data_of(tight(SERIES, {"t": "AAPL", "i": "MN1", "max": max_points, **window}))
        assert len(series["symbol"]["series"]["time"]) == 1


@pytest.mark.parametrize(
    ("interval", "days", "refused"),
    [("M1", 6, True), ("H4", 6, True), ("M15", 5, False), ("D1", 400, False), ("W1", 900, False)],
)
def test_intraday_range_limit(tight: GraphQL, interval: str, days: int, refused: bool) -> None:
    start = datetime(2024, 3, 4, tzinfo=UTC)
    window = {"from": start.isoformat(), "to": (start + timedelta(days=days)).isoformat()}
    result = tight(SERIES, {"t": "ACME", "i": interval, "max": 50, **window})
    if refused:
        assert "days" in bad_input(result)
    else:
        assert len(data_of(result)["symbol"]["series"]["time"]) <= 50


def test_series_never_exceeds_max_points_on_demo(gql: GraphQL, settings: Settings) -> None:
    series = data_of(gql(SERIES, {"t": "ACME", "i": "M1", "max": 1000}))["symbol"]["series"]
    assert series["requestedInterval"] == "M1"
    assert INTERVALS.index(series["interval"]) > INTERVALS.index("M1")
    assert 0 < len(series["time"]) <= 1000
    want = resample(
        stored_bars(settings.database_url or "", "ACME", "M1"), series["interval"], "M1"
    )
    assert_same_bars(frame_of_series(series), want, f"ACME series at {series['interval']}")


@pytest.mark.parametrize(
    ("ticker", "interval", "window", "max_points", "expected"),
    [
        # 3,900 one-minute bars fit in 3,900 points: no coarsening
        ("ACME", "M1", {}, 3900, "M1"),
        # 3,270 daily bars fit in 3,270 points
        ("AAPL", "D1", {}, 3270, "D1"),
        # about 800 daily bars (2010 to 2013) fit in 1,000 points
        ("AAPL", "D1", {"from": "2010-01-01T00:00:00Z", "to": "2013-03-02T00:00:00Z"}, 1000, "D1"),
        # 780 five-minute bars: M5 is the finest interval that fits 1,000 points
        ("ACME", "M1", {}, 1000, "M5"),
    ],
)
def test_series_answers_at_the_finest_interval_that_fits(
    gql: GraphQL,
    settings: Settings,
    ticker: str,
    interval: str,
    window: dict[str, str],
    max_points: int,
    expected: str,
) -> None:
    """As documented on `Symbol.series`: coarser only when the range holds more than
    `maxPoints` bars, and then the finest coarser interval that fits."""
    base = "M1" if ticker == "ACME" else "D1"
    stored = stored_bars(settings.database_url or "", ticker, base)
    want = resample(stored, expected, base)
    if window:
        want = want[(want.index >= window["from"]) & (want.index < window["to"])]
    assert len(want) <= max_points
    variables = {"t": ticker, "i": interval, "max": max_points, **window}
    series = data_of(gql(SERIES, variables))["symbol"]["series"]
    assert series["interval"] == expected, f"{len(series['time'])} points"
    assert_same_bars(frame_of_series(series), want, f"{ticker} series at {expected}")


@HYPOTHESIS
@given(
    interval=st.sampled_from(["M1", "M5", "M15", "H1"]),
    max_points=st.integers(1, 2000),
    start=st.integers(0, 12 * 24 * 60),
    length=st.integers(1, 12 * 24 * 60),
)
def test_series_fits_max_points_for_any_window(
    gql: GraphQL, settings: Settings, interval: str, max_points: int, start: int, length: int
) -> None:
    lo = datetime(2024, 3, 3, tzinfo=UTC) + timedelta(minutes=start)
    hi = lo + timedelta(minutes=length)
    variables = {
        "t": "GLOBX",
        "i": interval,
        "max": max_points,
        "from": lo.isoformat(),
        "to": hi.isoformat(),
    }
    series = data_of(gql(SERIES, variables))["symbol"]["series"]
    assert len(series["time"]) <= max_points
    used = series["interval"]
    assert INTERVALS.index(used) >= INTERVALS.index(interval)
    full = resample(stored_bars(settings.database_url or "", "GLOBX", "M1"), used, "M1")
    want = full[(full.index >= pd.Timestamp(lo)) & (full.index < pd.Timestamp(hi))]
    assert_same_bars(frame_of_series(series), want, f"GLOBX series at {used}")


# --- Ten years of one-minute bars -----------------------------------------------------------


@pytest.fixture(scope="module")
def decade(make_database: Callable[[], str]) -> Iterator[tuple[str, GraphQL]]:
    """A symbol with one-minute bars spread over ten years (a sparse stand-in for ten years
    of minutes: the series must coarsen by the range, whatever it holds)."""
    url = scratch_database(make_database)
    days = pd.date_range("2014-01-01", "2023-12-31", freq="D", tz="UTC")
    minutes = days + pd.Timedelta(hours=14, minutes=30)
    dense = pd.date_range("2023-12-29T14:30Z", periods=390, freq="min")
    times = minutes.union(dense)
    store_bars(url, {"DECADE": ohlcv(times, seed=21)}, "M1")
    with app_client(url) as client:
        yield url, gql_for(client)


@pytest.mark.parametrize("max_points", [1000, 600, 130])
def test_ten_years_of_minutes_fit_max_points(decade: tuple[str, GraphQL], max_points: int) -> None:
    url, gql = decade
    window = {"from": "2014-01-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"}
    variables = {"t": "DECADE", "i": "M1", "max": max_points, **window}
    series = data_of(gql(SERIES, variables))["symbol"]["series"]
    used = series["interval"]
    assert series["requestedInterval"] == "M1"
    assert INTERVALS.index(used) >= INTERVALS.index("D1")
    assert 0 < len(series["time"]) <= max_points
    full = resample(stored_bars(url, "DECADE", "M1"), used, "M1")
    want = full[(full.index >= window["from"]) & (full.index < window["to"])]
    assert_same_bars(frame_of_series(series), want, f"DECADE series at {used}")


def test_ten_years_of_monthly_bars_cannot_fit_100_points(decade: tuple[str, GraphQL]) -> None:
    _, gql = decade
    window = {"from": "2014-01-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"}
    message = bad_input(gql(SERIES, {"t": "DECADE", "i": "M1", "max": 100, **window}))
    assert "maxPoints" in message
