"""Adjusted reads and the caches; indicators on adjusted bars against TA-Lib.

Cache: the same adjusted query before and after a new (then a corrected) action answers
differently, with the field cache in memory and in Redis, while RAW keeps its answer.
Indicators: values over adjusted bars equal TA-Lib over the same adjusted bars (computed
here from the stored bars and the split), with `from` after the split so the warm-up that
the server reads lies across it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
import talib

from core.cache import FieldCache
from tests.api.helpers import (
    app_client,
    data_of,
    gql_for,
    ohlcv,
    scratch_database,
    store_bars,
    with_connection,
)
from workers.actions import Action, write_actions

DAYS = pd.date_range("2021-01-01", periods=300, freq="D", tz="UTC")


@pytest.fixture(scope="module")
def url(make_database: Callable[[], str]) -> str:
    return scratch_database(make_database)


def _act(url: str, actions: list[Action]) -> None:
    async def go(conn: Any) -> None:
        await write_actions(conn, actions, source="test")

    with_connection(url, go)


PAGE = """query($t: String!, $a: Adjustment!) { symbol(ticker: $t) {
  bars(first: 500, adjustment: $a) { nodes { time open high low close volume } }
  series(adjustment: $a, maxPoints: 500) { time close volume }
  latestBar(adjustment: $a) { close } } }"""


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_new_and_corrected_actions_change_adjusted_answers_not_raw(
    url: str, redis_url: str, backend: str
) -> None:
    ticker = f"CACHE_{backend.upper()}"
    raw = ohlcv(list(DAYS[:40]), seed=11)
    store_bars(url, {ticker: raw}, "D1")
    if backend == "redis":
        redis.Redis.from_url(redis_url).flushdb()
    with app_client(url, redis_url=redis_url if backend == "redis" else None) as client:
        gql = gql_for(client)
        cache: FieldCache = client.app.state.services.cache  # type: ignore[attr-defined]
        raw_before = data_of(gql(PAGE, {"t": ticker, "a": "RAW"}))
        all_before = data_of(gql(PAGE, {"t": ticker, "a": "ALL"}))
        computed = cache.stats.computed
        assert data_of(gql(PAGE, {"t": ticker, "a": "ALL"})) == all_before
        assert cache.stats.computed == computed  # the repeat came from the cache
        assert all_before == raw_before  # no actions yet: ALL is RAW
        ex = DAYS[20].date()
        _act(url, [Action(ticker, "SPLIT", ex, 2.0)])
        all_after = data_of(gql(PAGE, {"t": ticker, "a": "ALL"}))
        assert all_after != all_before
        closes = [n["close"] for n in all_after["symbol"]["bars"]["nodes"]][::-1]
        want = (raw["close"] * np.where(raw.index < pd.Timestamp(ex, tz="UTC"), 0.5, 1)).tolist()
        assert closes == pytest.approx(want, rel=1e-12)
        assert all_after["symbol"]["series"]["close"] == pytest.approx(want, rel=1e-12)
        # A corrected ratio (the same split, now 3-for-1) is a change too.
        _act(url, [Action(ticker, "SPLIT", ex, 3.0)])
        corrected = data_of(gql(PAGE, {"t": ticker, "a": "ALL"}))
        closes = [n["close"] for n in corrected["symbol"]["bars"]["nodes"]][::-1]
        want = (raw["close"] * np.where(raw.index < pd.Timestamp(ex, tz="UTC"), 1 / 3, 1)).tolist()
        assert closes == pytest.approx(want, rel=1e-12)
        # Re-ingesting the same action changes nothing and records no event.
        assert with_connection(
            url, lambda conn: write_actions(conn, [Action(ticker, "SPLIT", ex, 3.0)])
        ) == (0, [])
        assert data_of(gql(PAGE, {"t": ticker, "a": "RAW"})) == raw_before


INDICATORS = """query($t: String!, $from: DateTime!, $to: DateTime!) { symbol(ticker: $t) {
  indicators(from: $from, to: $to, adjustment: ALL) {
    sma(period: 20) { time value } ema(period: 30) { value } rsi { value } atr { value }
    obv { value } macd { macd signal histogram } } } }"""


@pytest.fixture(scope="module")
def split_symbol(url: str) -> pd.DataFrame:
    raw = ohlcv(list(DAYS), seed=12)
    store_bars(url, {"IND_SPLIT": raw}, "D1")
    _act(
        url,
        [
            Action("IND_SPLIT", "SPLIT", DAYS[150].date(), 4.0),
            Action("IND_SPLIT", "DIVIDEND", DAYS[100].date(), 0.9),
        ],
    )
    return raw


@pytest.fixture(scope="module")
def gql(url: str) -> Iterator[Any]:
    with app_client(url) as client:
        yield gql_for(client)


def _adjusted(raw: pd.DataFrame) -> pd.DataFrame:
    ts = raw.index
    split = np.where(ts < DAYS[150], 0.25, 1.0)
    dividend = np.where(ts < DAYS[100], 1 - 0.9 / raw["close"].iloc[99], 1.0)
    out = raw.copy()
    for c in ("open", "high", "low", "close"):
        out[c] = raw[c] * split * dividend
    out["volume"] = raw["volume"] * np.where(ts < DAYS[150], 4.0, 1.0)
    return out


@pytest.mark.parametrize("start", [150, 155, 170, 200])
def test_indicators_on_adjusted_bars_equal_talib(
    split_symbol: pd.DataFrame, gql: Any, start: int
) -> None:
    adj = _adjusted(split_symbol)
    h, lo, c, v = (adj[k].to_numpy(float) for k in ("high", "low", "close", "volume"))
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    reference = {
        "sma.value": talib.SMA(c, 20),
        "ema.value": talib.EMA(c, 30),
        "rsi.value": talib.RSI(c, 14),
        "atr.value": talib.ATR(h, lo, c, 14),
        "obv.value": talib.OBV(c, v),
        "macd.macd": macd,
        "macd.signal": signal,
        "macd.histogram": hist,
    }
    end = start + 40
    ind = data_of(
        gql(
            INDICATORS,
            {"t": "IND_SPLIT", "from": DAYS[start].isoformat(), "to": DAYS[end].isoformat()},
        )
    )["symbol"]["indicators"]
    assert [pd.Timestamp(t) for t in ind["sma"]["time"]] == list(DAYS[start:end])
    for name, ref in reference.items():
        group, output = name.split(".")
        got = np.array([np.nan if x is None else x for x in ind[group][output]], dtype=float)
        want = ref[start:end]
        assert np.array_equal(np.isnan(got), np.isnan(want)), name
        tol = 1e-12 + 1e-9 * np.nanmax(np.abs(want))
        assert np.nanmax(np.abs(got - want)) <= tol, name
    # And they are not the raw bars' values: the EMA's warm-up crossed the split.
    raw_ema = talib.EMA(split_symbol["close"].to_numpy(float), 30)[start:end]
    assert not np.allclose(np.asarray(ind["ema"]["value"], dtype=float), raw_ema)


def test_as_of_is_a_date(gql: Any, split_symbol: pd.DataFrame) -> None:
    q = """query { symbol(ticker: "IND_SPLIT") {
        bars(first: 1, order: OLDEST_FIRST, adjustment: ALL, asOf: "2021-13-01")
        { nodes { close } } } }"""
    body = gql(q)
    assert body.get("errors"), body
    # A date before every action gives the raw close; one after both, the adjusted one.
    for as_of, want in (
        (date(2021, 1, 1), split_symbol["close"].iloc[0]),
        (date(2022, 1, 1), _adjusted(split_symbol)["close"].iloc[0]),
    ):
        got = data_of(gql(q.replace("2021-13-01", as_of.isoformat())))
        assert got["symbol"]["bars"]["nodes"][0]["close"] == pytest.approx(want, rel=1e-12)
