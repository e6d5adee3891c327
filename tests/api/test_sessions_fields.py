"""Symbol.calendar, defaultSession and sessions: the calendar behind session-aligned bars."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandas_market_calendars as mcal

from tests.conftest import GraphQL

SESSIONS = """query($t: String!, $from: Date!, $to: Date!) { symbol(ticker: $t) {
    calendar defaultSession
    sessions(from: $from, to: $to) { date preOpen open close postClose }
    bars(interval: D1, from: "2024-11-25T00:00:00Z", to: "2024-12-03T00:00:00Z",
         order: OLDEST_FIRST) { nodes { time } } } }"""


def test_nyse_sessions_come_from_the_calendar_and_stamp_the_daily_bars(gql: GraphQL) -> None:
    data = gql(SESSIONS, {"t": "UMBRL", "from": "2024-11-25", "to": "2024-12-03"})["data"]
    sym = data["symbol"]
    assert (sym["calendar"], sym["defaultSession"]) == ("XNYS", "REGULAR")
    want = mcal.get_calendar("NYSE").schedule("2024-11-25", "2024-12-02", start="pre", end="post")
    got = sym["sessions"]
    assert [s["date"] for s in got] == [d.date().isoformat() for d in want.index]
    assert "2024-11-28" not in [s["date"] for s in got]  # Thanksgiving
    for s, (_, row) in zip(got, want.iterrows(), strict=True):
        assert pd.Timestamp(s["open"]) == row["market_open"]
        assert pd.Timestamp(s["close"]) == row["market_close"]
        assert pd.Timestamp(s["preOpen"]) == row["pre"]
        assert pd.Timestamp(s["postClose"]) == row["post"]
    half = next(s for s in got if s["date"] == "2024-11-29")
    assert pd.Timestamp(half["close"]) == pd.Timestamp("2024-11-29T18:00:00Z")  # 13:00 New York
    # Each daily bar is stamped 00:00 UTC of one of these trading dates.
    stamps = [n["time"][:10] for n in sym["bars"]["nodes"]]
    assert stamps == [s["date"] for s in got]


def test_a_24_7_calendar_has_every_day_and_wide_ranges_are_refused(gql: GraphQL) -> None:
    data = gql(SESSIONS, {"t": "COINX", "from": "2024-11-30", "to": "2024-12-03"})["data"]
    sym = data["symbol"]
    assert (sym["calendar"], sym["defaultSession"]) == ("24/7", "ALL")
    assert [s["date"] for s in sym["sessions"]] == ["2024-11-30", "2024-12-01", "2024-12-02"]
    assert all(s["open"].startswith(s["date"]) for s in sym["sessions"])
    wide = gql(SESSIONS, {"t": "COINX", "from": "1990-01-01", "to": "2025-01-01"})
    assert wide["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "at most" in wide["errors"][0]["message"]


INSTANTS = """query($t: String!, $i: Interval!, $from: DateTime!, $to: DateTime!) {
  symbol(ticker: $t) {
    bars(interval: $i, from: $from, to: $to, order: OLDEST_FIRST, first: 200) {
      nodes { time sessionOpen sessionClose } }
    latestBar(interval: $i) { time sessionOpen sessionClose } } }"""


def _instants(gql: GraphQL, ticker: str, interval: str, start: str, end: str) -> Any:
    return gql(INSTANTS, {"t": ticker, "i": interval, "from": start, "to": end})["data"]["symbol"]


def test_bars_expose_the_session_they_belong_to(gql: GraphQL) -> None:
    schedule = mcal.get_calendar("NYSE").schedule("2024-11-25", "2024-12-06")
    by_date = {d.date().isoformat(): r for d, r in schedule.iterrows()}
    daily = _instants(gql, "UMBRL", "D1", "2024-11-25T00:00:00Z", "2024-12-07T00:00:00Z")
    assert daily["bars"]["nodes"]
    for bar in daily["bars"]["nodes"]:
        row = by_date[bar["time"][:10]]
        assert pd.Timestamp(bar["sessionOpen"]) == row["market_open"]
        assert pd.Timestamp(bar["sessionClose"]) == row["market_close"]
    half = next(b for b in daily["bars"]["nodes"] if b["time"].startswith("2024-11-29"))
    assert pd.Timestamp(half["sessionClose"]) == pd.Timestamp("2024-11-29T18:00:00Z")
    assert daily["latestBar"]["sessionOpen"] == daily["bars"]["nodes"][-1]["sessionOpen"]
    hourly = _instants(gql, "UMBRL", "H1", "2024-11-29T00:00:00Z", "2024-11-30T00:00:00Z")
    assert {b["sessionOpen"] for b in hourly["bars"]["nodes"]} == {half["sessionOpen"]}
    weekly = _instants(gql, "UMBRL", "W1", "2024-11-25T00:00:00Z", "2024-12-02T00:00:00Z")
    (week,) = weekly["bars"]["nodes"]
    assert pd.Timestamp(week["sessionOpen"]) == by_date["2024-11-25"]["market_open"]
    assert pd.Timestamp(week["sessionClose"]) == by_date["2024-11-29"]["market_close"]
    # Stored daily bars of an exchange calendar too (AAPL on XNAS); none on 24/7.
    apple = _instants(gql, "AAPL", "D1", "2013-02-25T00:00:00Z", "2013-02-26T00:00:00Z")
    (bar,) = apple["bars"]["nodes"]
    assert bar["sessionOpen"] == "2013-02-25T14:30:00+00:00"
    coin = _instants(gql, "COINX", "D1", "2024-11-30T00:00:00Z", "2024-12-01T00:00:00Z")
    assert [b["sessionOpen"] for b in coin["bars"]["nodes"]] == [None]


def test_filling_stored_daily_bars_follows_the_trading_dates(gql: GraphQL) -> None:
    """AAPL's daily bars are stored (never filtered), but a fill must not add weekends or
    holidays: its slots are the calendar's trading dates (Christmas 2012 and New Year)."""
    query = """{ symbol(ticker: "AAPL") {
        bars(interval: D1, fill: PREVIOUS, order: OLDEST_FIRST, first: 50,
             from: "2012-12-20T00:00:00Z", to: "2013-01-03T00:00:00Z") {
          totalCount nodes { time filled } } } }"""
    bars = gql(query)["data"]["symbol"]["bars"]
    want = mcal.get_calendar("NASDAQ").schedule("2012-12-20", "2013-01-02")
    dates = [d.date().isoformat() for d in want.index]
    assert [n["time"][:10] for n in bars["nodes"]] == dates
    assert "2012-12-25" not in dates and "2012-12-22" not in dates
    assert bars["totalCount"] == len(dates)
    assert not any(n["filled"] for n in bars["nodes"])  # the stored history has every one
