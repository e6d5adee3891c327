"""Indicators over GraphQL: TA-Lib's values from the first bar of any range, batched, validated."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np
import pandas as pd
import pytest
import talib
from fastapi.testclient import TestClient
from sqlalchemy import event

import loaders.indicators as indicator_loader
from core import db
from graphql_api.app import create_app
from tests.conftest import GraphQL, migrated_settings
from workers.demo import daily_stocks, synthetic_minutes
from workers.symbols import SymbolInfo, upsert_symbols
from workers.upsert import frame_records, upsert_bars

ALL = """
  sma(period: 20) { time value validFrom } ema(period: 20) { value } wma(period: 10) { value }
  rsi { value } roc { value } atr { value } obv { value }
  macd(fast: 12, slow: 26, signal: 9) { macd signal histogram }
  bbands(period: 20, nbdevUp: 2, nbdevDown: 1.5) { upper middle lower }
  stoch(fastK: 5, slowK: 3, slowD: 3) { k d }
"""


def _reference(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    h, lo, c, v = (frame[k].to_numpy(float) for k in ("high", "low", "close", "volume"))
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 1.5)
    k, d = talib.STOCH(h, lo, c, 5, 3, 0, 3, 0)
    return {
        "sma.value": talib.SMA(c, 20),
        "ema.value": talib.EMA(c, 20),
        "wma.value": talib.WMA(c, 10),
        "rsi.value": talib.RSI(c, 14),
        "roc.value": talib.ROC(c, 10),
        "atr.value": talib.ATR(h, lo, c, 14),
        "obv.value": talib.OBV(c, v),
        "macd.macd": macd,
        "macd.signal": signal,
        "macd.histogram": hist,
        "bbands.upper": upper,
        "bbands.middle": middle,
        "bbands.lower": lower,
        "stoch.k": k,
        "stoch.d": d,
    }


def _assert_matches(got: list[float | None], ref: np.ndarray, what: str) -> None:
    got_arr = np.array([np.nan if x is None else x for x in got], dtype=float)
    assert got_arr.shape == ref.shape, what
    assert np.array_equal(np.isnan(got_arr), np.isnan(ref)), f"{what}: null positions differ"
    tol = 1e-12 + 1e-9 * np.nanmax(np.abs(ref)) if np.isfinite(ref).any() else 0
    diff = np.nanmax(np.abs(got_arr - ref)) if np.isfinite(ref).any() else 0
    assert diff <= tol, f"{what}: off by {diff}"


@pytest.mark.parametrize("start", ["2000-03-01", "2001-06-15", "2008-09-15", "2013-01-02"])
def test_daily_indicators_equal_whole_history_talib(gql: GraphQL, start: str) -> None:
    end = (pd.Timestamp(start) + pd.Timedelta(days=120)).strftime("%Y-%m-%d")
    body = gql(
        f'{{ symbol(ticker: "AAPL") {{ indicators(from: "{start}T00:00:00Z", '
        f'to: "{end}T00:00:00Z") {{ {ALL} }} }} }}'
    )
    assert "errors" not in body, body
    ind = body["data"]["symbol"]["indicators"]
    stocks = daily_stocks()
    aapl = stocks[stocks.ticker == "AAPL"].sort_values("ts").reset_index(drop=True)
    in_range = (
        (aapl.ts >= pd.Timestamp(start, tz="UTC")) & (aapl.ts < pd.Timestamp(end, tz="UTC"))
    ).to_numpy()
    times = [datetime.fromisoformat(t) for t in ind["sma"]["time"]]
    assert times == list(aapl.ts[in_range].dt.to_pydatetime())
    for path, ref in _reference(aapl).items():
        name, field = path.split(".")
        _assert_matches(ind[name][field], ref[in_range], f"{path} from {start}")
    first = ind["sma"]["validFrom"]
    values = ind["sma"]["value"]
    expected_first = next(
        (t for t, v in zip(ind["sma"]["time"], values, strict=True) if v is not None), None
    )
    assert first == expected_first


def test_resampled_intraday_indicators_equal_whole_history(gql: GraphQL, settings: Any) -> None:
    # ACME's one-minute bars resampled to M15 in SQL, then RSI/EMA/MACD from 2024-03-08.
    body = gql(
        '{ symbol(ticker: "ACME") { indicators(interval: M15, from: "2024-03-08T15:00:00Z") { '
        "rsi { time value } ema(period: 10) { value } macd { macd } } "
        "series(interval: M15, maxPoints: 100000) { time open high low close volume } } }"
    )
    assert "errors" not in body, body
    series = body["data"]["symbol"]["series"]
    close = np.array(series["close"], dtype=float)
    times = series["time"]
    in_range = np.array([t >= "2024-03-08T15:00:00+00:00" for t in times])
    ind = body["data"]["symbol"]["indicators"]
    assert ind["rsi"]["time"] == [t for t, keep in zip(times, in_range, strict=True) if keep]
    _assert_matches(ind["rsi"]["value"], talib.RSI(close, 14)[in_range], "rsi M15")
    _assert_matches(ind["ema"]["value"], talib.EMA(close, 10)[in_range], "ema M15")
    _assert_matches(ind["macd"]["macd"], talib.MACD(close)[0][in_range], "macd M15")


def test_vwap_session_and_cumulative(gql: GraphQL) -> None:
    body = gql(
        '{ symbol(ticker: "GLOBX") { indicators(interval: M1, from: "2024-03-05T18:00:00Z", '
        'to: "2024-03-06T16:00:00Z") { s: vwap { time value } c: vwap(anchor: CUMULATIVE) '
        "{ value } } } }"
    )
    assert "errors" not in body, body
    ind = body["data"]["symbol"]["indicators"]
    bars = synthetic_minutes("GLOBX", 1, 120.0)
    typical = (bars.high + bars.low + bars.close) / 3
    pv = typical * bars.volume
    day = bars.ts.dt.floor("D")
    session = pv.groupby(day).cumsum() / bars.volume.groupby(day).cumsum()
    cumulative = pv.cumsum() / bars.volume.cumsum()
    mask = (bars.ts >= "2024-03-05T18:00:00Z") & (bars.ts < "2024-03-06T16:00:00Z")
    _assert_matches(ind["s"]["value"], session[mask].to_numpy(), "session vwap")
    _assert_matches(ind["c"]["value"], cumulative[mask].to_numpy(), "cumulative vwap")


@pytest.mark.parametrize(
    ("field", "fragment"),
    [
        ("sma(period: 0) { value }", "period must be between 1"),
        ("macd(fast: 26, slow: 12) { macd }", "must be less than"),
        ("rsi(period: 100000) { value }", "between"),
        ("bbands(nbdevUp: -1) { upper }", "nbdevUp"),
    ],
)
def test_invalid_parameters_are_bad_user_input(gql: GraphQL, field: str, fragment: str) -> None:
    body = gql(f'{{ symbol(ticker: "AAPL") {{ indicators {{ {field} }} }} }}')
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert fragment in error["message"]


def test_undefined_values_are_null_never_nan(client: TestClient) -> None:
    query = '{ symbol(ticker: "FB") { indicators { sma(period: 100) { value } } } }'
    response = client.post("/graphql", json={"query": query})
    assert b"NaN" not in response.content
    sma = response.json()["data"]["symbol"]["indicators"]["sma"]
    assert sma["value"][:99] == [None] * 99
    assert all(v is not None for v in sma["value"][99:])


@pytest.fixture(scope="module")
def twenty_symbols(make_database: Callable[[], str]) -> Any:
    settings = migrated_settings(make_database())
    db.upgrade(settings)

    async def load() -> None:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            ids = await upsert_symbols(conn, [SymbolInfo(f"T{i:02d}") for i in range(20)])
            frames = [
                synthetic_minutes(t, i, 10.0 + i).assign(timeframe="M1", symbol_id=sid)
                for i, (t, sid) in enumerate(sorted(ids.items()))
            ]
            await upsert_bars(conn, frame_records(pd.concat(frames)), source="test")
        finally:
            await conn.close()

    asyncio.run(load())
    # Statement counts below need each query run once: no second (verification) execution.
    return settings.model_copy(update={"cache_enabled": False, "verify_fast_path": False})


def _statements(client: TestClient, query: str) -> int:
    seen: list[str] = []

    def count(*args: Any, **kw: Any) -> None:
        seen.append(args[2])

    engine = client.app.state.services.engine.sync_engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.post("/graphql", json={"query": query})
        assert "errors" not in response.json(), response.json()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen)


def test_rsi_for_twenty_symbols_costs_the_statements_of_one(twenty_symbols: Any) -> None:
    query = (
        "{ symbols(first: %d) { edges { node { ticker "
        "indicators(interval: M5) { rsi { value } } } } } }"
    )
    with TestClient(create_app(twenty_symbols)) as client:
        one = _statements(client, query % 1)
        twenty = _statements(client, query % 20)
    assert one == twenty <= 3


def test_large_batches_compute_off_the_event_loop(
    twenty_symbols: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    original = indicator_loader._compute

    def spy(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(*args)

    monkeypatch.setattr(indicator_loader, "_compute", spy)
    monkeypatch.setattr(indicator_loader, "THREAD_THRESHOLD", 1000)
    query = (
        "{ symbols(first: 20) { edges { node { indicators(interval: M1) { ema { value } } } } } }"
    )
    with TestClient(create_app(twenty_symbols)) as client:
        loop_thread = client.portal.call(lambda: threading.current_thread().name)  # type: ignore[union-attr]
        response = client.post("/graphql", json={"query": query})
    assert "errors" not in response.json()
    assert threads and all(t != loop_thread for t in threads)


def test_range_with_too_many_bars_is_refused(settings: Any) -> None:
    small = settings.model_copy(update={"max_series_points": 1000})
    query = '{ symbol(ticker: "ACME") { indicators(interval: M1) { sma { value } } } }'
    with TestClient(create_app(small)) as client:
        body = client.post("/graphql", json={"query": query}).json()
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "more than 1000 M1 bars" in body["errors"][0]["message"]
        coarser = '{ symbol(ticker: "ACME") { indicators(interval: H1) { sma { value } } } }'
        assert "errors" not in client.post("/graphql", json={"query": coarser}).json()
