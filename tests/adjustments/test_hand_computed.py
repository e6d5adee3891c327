"""Adjusted bars against factors computed by hand, one case per symbol.

Each case stores ten daily bars (2020-01-06 .. 2020-01-15) of a symbol of its own, ingests
its actions with `workers.actions.write_actions`, and compares `bars`, `series`, `latestBar`
and a weekly resample (which spans the ex-date) with the raw bars times the factor written
out in the test: the standard back-adjustment of core.adjustments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import (
    GraphQL,
    app_client,
    bad_input,
    data_of,
    gql_for,
    ohlcv,
    scratch_database,
    store_bars,
    with_connection,
)
from workers.actions import Action, write_actions

DAYS = pd.date_range("2020-01-06", periods=10, freq="D", tz="UTC")
EX = date(2020, 1, 11)  # a Saturday: bars 0..4 lie before it, 5..9 on or after
BEFORE = pd.Timestamp(EX, tz="UTC") > DAYS
PRICES = ["open", "high", "low", "close"]


def _raw(seed: int) -> pd.DataFrame:
    return ohlcv(list(DAYS), seed=seed)


@pytest.fixture(scope="module")
def url(make_database: Callable[[], str]) -> str:
    return scratch_database(make_database)


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[TestClient]:
    with app_client(url) as c:
        yield c


@pytest.fixture(scope="module")
def gql(client: TestClient) -> GraphQL:
    return gql_for(client)


def _store(url: str, ticker: str, seed: int, actions: list[Action]) -> pd.DataFrame:
    raw = _raw(seed)
    store_bars(url, {ticker: raw}, "D1")

    async def go(conn: Any) -> None:
        await write_actions(conn, actions, source="test")

    with_connection(url, go)
    return raw


BARS = """
query($t: String!, $a: Adjustment!, $asOf: Date, $i: Interval!) {
  symbol(ticker: $t) {
    bars(interval: $i, first: 100, order: OLDEST_FIRST, adjustment: $a, asOf: $asOf) {
      nodes { time open high low close volume }
    }
    series(interval: $i, adjustment: $a, asOf: $asOf) { time open high low close volume }
    latestBar(interval: $i, adjustment: $a, asOf: $asOf) { time close }
  }
}
"""


def _fetch(
    gql: GraphQL, ticker: str, adj: str, as_of: str | None = None, interval: str = "D1"
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    sym = data_of(gql(BARS, {"t": ticker, "a": adj, "asOf": as_of, "i": interval}))["symbol"]
    nodes = sym["bars"]["nodes"]
    bars = pd.DataFrame(
        {c: [n[c] for n in nodes] for c in [*PRICES, "volume"]},
        index=pd.to_datetime([n["time"] for n in nodes], utc=True),
    )
    s = sym["series"]
    series = pd.DataFrame(
        {c: s[c] for c in [*PRICES, "volume"]}, index=pd.to_datetime(s["time"], utc=True)
    )
    return bars, series, sym["latestBar"]


def _expected(raw: pd.DataFrame, price: np.ndarray, volume: np.ndarray) -> pd.DataFrame:
    out = raw.copy()
    for c in PRICES:
        out[c] = raw[c] * price
    out["volume"] = raw["volume"] * volume
    return out


def _close(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.index) == list(want.index)
    for c in [*PRICES, "volume"]:
        np.testing.assert_allclose(got[c].to_numpy(), want[c].to_numpy(), rtol=1e-12, atol=0)


def _check(
    gql: GraphQL, ticker: str, want: pd.DataFrame, adj: str = "ALL", as_of: str | None = None
) -> None:
    bars, series, latest = _fetch(gql, ticker, adj, as_of)
    _close(bars, want)
    _close(series, want)
    assert latest["close"] == pytest.approx(want["close"].iloc[-1], rel=1e-12)


def _step(before: float, after: float = 1.0) -> np.ndarray:
    return np.where(BEFORE, before, after)


@pytest.mark.parametrize(
    ("ticker", "ratio", "price", "volume"),
    [
        ("HC_SPLIT2", 2.0, 0.5, 2.0),  # 2-for-1
        ("HC_SPLIT32", 1.5, 2 / 3, 1.5),  # 3-for-2
        ("HC_REVERSE", 0.1, 10.0, 0.1),  # 1-for-10 reverse split
    ],
)
def test_split(
    url: str, gql: GraphQL, ticker: str, ratio: float, price: float, volume: float
) -> None:
    raw = _store(url, ticker, 1, [Action(ticker, "SPLIT", EX, ratio)])
    want = _expected(raw, _step(price), _step(volume))
    _check(gql, ticker, want, "ALL")
    _check(gql, ticker, want, "SPLIT")
    # A split is not a dividend, and RAW is the stored bars.
    _check(gql, ticker, raw, "DIVIDEND")
    _check(gql, ticker, raw, "RAW")


def test_dividend(url: str, gql: GraphQL) -> None:
    raw = _store(url, "HC_DIV", 2, [Action("HC_DIV", "DIVIDEND", EX, 0.8)])
    previous_close = raw["close"].iloc[4]  # the last bar before the ex-date
    factor = 1 - 0.8 / previous_close
    want = _expected(raw, _step(factor), _step(1.0))
    _check(gql, "HC_DIV", want, "ALL")
    _check(gql, "HC_DIV", want, "DIVIDEND")
    _check(gql, "HC_DIV", raw, "SPLIT")


def test_two_actions_on_one_day(url: str, gql: GraphQL) -> None:
    # A 2-for-1 split and a dividend of 0.5 per (new) share the same day: the dividend's
    # previous close in new shares is close / 2.
    raw = _store(
        url,
        "HC_TWO",
        3,
        [Action("HC_TWO", "SPLIT", EX, 2.0), Action("HC_TWO", "DIVIDEND", EX, 0.5)],
    )
    dividend = 1 - 0.5 / (raw["close"].iloc[4] / 2)
    _check(gql, "HC_TWO", _expected(raw, _step(0.5 * dividend), _step(2.0)), "ALL")
    _check(gql, "HC_TWO", _expected(raw, _step(0.5), _step(2.0)), "SPLIT")
    _check(gql, "HC_TWO", _expected(raw, _step(dividend), _step(1.0)), "DIVIDEND")


def test_actions_before_the_first_bar_and_after_the_last(url: str, gql: GraphQL) -> None:
    raw = _store(
        url,
        "HC_ENDS",
        4,
        [
            Action("HC_ENDS", "SPLIT", date(2019, 6, 3), 4.0),  # before every bar: no effect
            Action("HC_ENDS", "DIVIDEND", date(2019, 6, 3), 1.0),  # no close before it: none
            Action("HC_ENDS", "SPLIT", date(2020, 2, 3), 2.0),  # after every bar: all of them
            Action("HC_ENDS", "DIVIDEND", date(2020, 2, 3), 0.25),
        ],
    )
    dividend = 1 - 0.25 * 2.0 / raw["close"].iloc[-1]  # previous close: the newest bar's
    want = _expected(raw, np.full(len(raw), 0.5 * dividend), np.full(len(raw), 2.0))
    _check(gql, "HC_ENDS", want, "ALL")


def test_as_of_before_and_after_an_action(url: str, gql: GraphQL) -> None:
    raw = _store(
        url,
        "HC_ASOF",
        5,
        [Action("HC_ASOF", "SPLIT", EX, 2.0), Action("HC_ASOF", "SPLIT", date(2020, 1, 14), 3.0)],
    )
    later = pd.Timestamp("2020-01-14", tz="UTC") > DAYS
    both = np.where(BEFORE, 1 / 6, np.where(later, 1 / 3, 1.0))
    # Known at the day before the first ex-date: nothing applies.
    _check(gql, "HC_ASOF", raw, "ALL", "2020-01-10")
    # On the first ex-date: only the first split.
    _check(gql, "HC_ASOF", _expected(raw, _step(0.5), _step(2.0)), "ALL", "2020-01-11")
    _check(gql, "HC_ASOF", _expected(raw, both, 1 / both), "ALL", "2020-01-14")
    _check(gql, "HC_ASOF", _expected(raw, both, 1 / both), "ALL")  # default: today


def test_weekly_bar_spanning_a_split_aggregates_adjusted_rows(url: str, gql: GraphQL) -> None:
    raw = _store(url, "HC_WEEK", 6, [Action("HC_WEEK", "SPLIT", date(2020, 1, 9), 2.0)])
    adjusted = _expected(
        raw,
        np.where(pd.Timestamp("2020-01-09", tz="UTC") > DAYS, 0.5, 1.0),
        np.where(pd.Timestamp("2020-01-09", tz="UTC") > DAYS, 2.0, 1.0),
    )
    weekly = adjusted.resample("W-MON", label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    bars, series, _ = _fetch(gql, "HC_WEEK", "ALL", interval="W1")
    _close(bars, weekly)
    _close(series, weekly)


def test_corporate_actions_listed(url: str, gql: GraphQL) -> None:
    _store(
        url,
        "HC_LIST",
        7,
        [
            Action("HC_LIST", "SPLIT", EX, 2.0),
            Action("HC_LIST", "DIVIDEND", date(2020, 1, 14), 0.3),
        ],
    )
    query = """query($t: String!, $from: Date, $to: Date) { symbol(ticker: $t) {
        corporateActions(from: $from, to: $to) { kind exDate ratio amount currency source } } }"""
    got = data_of(gql(query, {"t": "HC_LIST"}))["symbol"]["corporateActions"]
    assert got == [
        {"kind": "SPLIT", "exDate": "2020-01-11", "ratio": 2.0, "amount": None,
         "currency": "USD", "source": "test"},
        {"kind": "DIVIDEND", "exDate": "2020-01-14", "ratio": None, "amount": 0.3,
         "currency": "USD", "source": "test"},
    ]  # fmt: skip
    ranged = data_of(gql(query, {"t": "HC_LIST", "from": "2020-01-12", "to": "2020-02-01"}))
    assert [a["kind"] for a in ranged["symbol"]["corporateActions"]] == ["DIVIDEND"]
    bad_input(gql(query, {"t": "HC_LIST", "from": "2020-02-01", "to": "2020-01-01"}))
