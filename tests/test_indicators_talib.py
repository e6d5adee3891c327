"""The indicator engine against TA-Lib (the oracle) on demo stocks and synthetic series.

Every comparison demands identical NaN positions and |x - ref| <= 1e-12 + 1e-9 * max|ref|.
VWAP is not in TA-Lib: it is checked against a plain pandas groupby computation.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bokeh_sampledata
import numpy as np
import pandas as pd
import pytest
import talib
import talib.abstract
from hypothesis import given, settings
from hypothesis import strategies as st

import indicators as ind
from indicators import INDICATORS, MAX_PERIOD, get_indicator
from indicators._kernels import CHUNK

Arrays = dict[str, np.ndarray]

TICKERS = ("AAPL", "IBM", "MSFT", "GOOG", "FB")


# --- data -------------------------------------------------------------------------------


@functools.cache
def demo_stocks() -> dict[str, Arrays]:
    """Daily OHLCV per ticker from bokeh-sampledata, oldest first."""
    path = Path(bokeh_sampledata.__file__).parent / "_data" / "stocks.csv.gz"
    frame = pd.read_csv(path, parse_dates=["Date"]).sort_values(["Ticker", "Date"])
    out: dict[str, Arrays] = {}
    for ticker, df in frame.groupby("Ticker"):
        out[str(ticker)] = {
            "open": df["Open"].to_numpy(np.float64),
            "high": df["High"].to_numpy(np.float64),
            "low": df["Low"].to_numpy(np.float64),
            "close": df["Close"].to_numpy(np.float64),
            "volume": df["Volume"].to_numpy(np.float64),
            "time": df["Date"].to_numpy("datetime64[ns]"),
        }
    return out


def random_walk(n: int, seed: int, level: float = 100.0, vol: float = 0.01) -> Arrays:
    """Geometric random-walk OHLCV bars at about `level`, one minute apart."""
    rng = np.random.default_rng(seed)
    close = level * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.empty(n)
    open_[0] = level
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, vol / 4, n - 1))
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    high = top * (1 + rng.uniform(0, vol, n))
    low = bottom * (1 - rng.uniform(0, vol, n))
    volume = np.round(rng.lognormal(10, 1, n))
    time = np.datetime64("2024-01-01T00:00", "ns") + np.arange(n) * np.timedelta64(60, "s")
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume, "time": time}


def flat(n: int, value: float = 42.5) -> Arrays:
    """Every price the same, constant volume."""
    bars = random_walk(n, 0)
    for key in ("open", "high", "low", "close"):
        bars[key] = np.full(n, value)
    bars["volume"] = np.full(n, 1000.0)
    return bars


SYNTHETIC: dict[str, Callable[[], Arrays]] = {
    "walk": lambda: random_walk(3000, 1),
    "walk-volatile": lambda: random_walk(3000, 2, vol=0.08),
    "walk-long": lambda: random_walk(2 * CHUNK + 1234, 3),  # crosses chunk boundaries
    "flat": lambda: flat(500),
    "tiny": lambda: random_walk(3000, 4, level=1e-6),
    "huge": lambda: random_walk(3000, 5, level=1e9),
    "short": lambda: random_walk(12, 6),
}


# --- oracle -----------------------------------------------------------------------------


def talib_reference(name: str, d: Arrays, p: dict[str, Any]) -> tuple[np.ndarray, ...]:
    """TA-Lib's outputs for the indicator, in the registry's output order."""
    h, lo, c, v = d["high"], d["low"], d["close"], d["volume"]
    match name:
        case "SMA" | "EMA" | "WMA" | "RSI" | "ROC":
            return (getattr(talib, name)(c, timeperiod=p["timeperiod"]),)
        case "MACD":
            return tuple(talib.MACD(c, p["fastperiod"], p["slowperiod"], p["signalperiod"]))
        case "STOCH":
            k = p["fastk_period"], p["slowk_period"], p["slowd_period"]
            return tuple(talib.STOCH(h, lo, c, k[0], k[1], 0, k[2], 0))
        case "BBANDS":
            return tuple(talib.BBANDS(c, p["timeperiod"], p["nbdevup"], p["nbdevdn"], 0))
        case "ATR":
            return (talib.ATR(h, lo, c, timeperiod=p["timeperiod"]),)
        case "OBV":
            return (talib.OBV(c, v),)
    raise AssertionError(name)


def talib_inputs(name: str, d: Arrays) -> tuple[np.ndarray, ...]:
    """TA-Lib's positional inputs of MIDPOINT, MIDPRICE and WILLR."""
    if name == "MIDPOINT":
        return (d["close"],)
    if name == "MIDPRICE":
        return (d["high"], d["low"])
    return (d["high"], d["low"], d["close"])


def ours(name: str, d: Arrays, p: dict[str, Any]) -> tuple[np.ndarray, ...]:
    """Our outputs through the registry, in output order."""
    spec = get_indicator(name)
    out = spec.compute(d, p)
    return tuple(out[o] for o in spec.outputs)


def assert_close(got: np.ndarray, ref: np.ndarray, label: str = "") -> None:
    """Same NaN positions and |got - ref| <= 1e-12 + 1e-9 * max|ref|."""
    assert got.shape == ref.shape, label
    got_nan, ref_nan = np.isnan(got), np.isnan(ref)
    if not np.array_equal(got_nan, ref_nan):
        where = np.flatnonzero(got_nan != ref_nan)[:5]
        raise AssertionError(f"{label}: NaN positions differ at {where.tolist()}")
    if ref_nan.all():
        return
    tol = 1e-12 + 1e-9 * np.max(np.abs(ref[~ref_nan]))
    err = np.abs(got[~ref_nan] - ref[~ref_nan])
    worst = int(np.argmax(err))
    assert err[worst] <= tol, f"{label}: error {err[worst]:.3g} > tolerance {tol:.3g}"


def assert_all_close(got: tuple[np.ndarray, ...], ref: tuple[np.ndarray, ...], label: str) -> None:
    """assert_close for every output."""
    assert len(got) == len(ref), label
    for i, (g, r) in enumerate(zip(got, ref, strict=True)):
        assert_close(g, r, f"{label} output {i}")


TALIB_NAMES = ("SMA", "EMA", "WMA", "RSI", "ROC", "MACD", "STOCH", "BBANDS", "ATR", "OBV")

CASES: list[tuple[str, dict[str, Any]]] = [
    ("SMA", {}),
    ("SMA", {"timeperiod": 1}),
    ("SMA", {"timeperiod": 7}),
    ("SMA", {"timeperiod": 200}),
    ("EMA", {}),
    ("EMA", {"timeperiod": 1}),
    ("EMA", {"timeperiod": 2}),
    ("EMA", {"timeperiod": 150}),
    ("WMA", {}),
    ("WMA", {"timeperiod": 1}),
    ("WMA", {"timeperiod": 13}),
    ("RSI", {}),
    ("RSI", {"timeperiod": 2}),
    ("RSI", {"timeperiod": 50}),
    ("ROC", {}),
    ("ROC", {"timeperiod": 1}),
    ("MACD", {}),
    ("MACD", {"fastperiod": 3, "slowperiod": 10, "signalperiod": 1}),
    ("MACD", {"fastperiod": 5, "slowperiod": 35, "signalperiod": 5}),
    ("STOCH", {}),
    ("STOCH", {"fastk_period": 14, "slowk_period": 3, "slowd_period": 3}),
    ("STOCH", {"fastk_period": 1, "slowk_period": 1, "slowd_period": 1}),
    ("STOCH", {"fastk_period": 21, "slowk_period": 1, "slowd_period": 7}),
    ("BBANDS", {}),
    ("BBANDS", {"timeperiod": 5, "nbdevup": 2.5, "nbdevdn": 1.0}),
    ("BBANDS", {"timeperiod": 2, "nbdevup": 0.0, "nbdevdn": 3.0}),
    ("ATR", {}),
    ("ATR", {"timeperiod": 1}),
    ("ATR", {"timeperiod": 30}),
    ("OBV", {}),
]


def _case_id(case: tuple[str, dict[str, Any]]) -> str:
    name, params = case
    return name + "".join(f"-{v}" for v in params.values())


def _full(name: str, params: dict[str, Any]) -> dict[str, Any]:
    return get_indicator(name).validate(params)


# --- TA-Lib comparisons -----------------------------------------------------------------


@pytest.mark.parametrize("ticker", TICKERS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_matches_talib_on_demo_stocks(ticker: str, case: tuple[str, dict[str, Any]]) -> None:
    name, params = case
    bars = demo_stocks()[ticker]
    p = _full(name, params)
    assert_all_close(ours(name, bars, p), talib_reference(name, bars, p), f"{ticker} {name}")


@pytest.mark.parametrize("kind", SYNTHETIC)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_matches_talib_on_synthetic_series(kind: str, case: tuple[str, dict[str, Any]]) -> None:
    name, params = case
    bars = SYNTHETIC[kind]()
    p = _full(name, params)
    assert_all_close(ours(name, bars, p), talib_reference(name, bars, p), f"{kind} {name}")


def test_flat_series_follows_talib_conventions() -> None:
    bars = flat(60)
    assert np.all(ind.rsi(bars["close"])[14:] == 0.0)  # no movement: 0, not 50
    slowk, slowd = ind.stoch(bars["high"], bars["low"], bars["close"])
    assert np.all(slowk[8:] == 0.0) and np.all(slowd[8:] == 0.0)  # high == low: 0
    upper, middle, lower = ind.bbands(bars["close"])
    assert np.all(upper[19:] == 42.5) and np.all(lower[19:] == 42.5)  # exactly, no sqrt noise
    assert np.all(middle[19:] == 42.5)
    assert np.all(ind.atr(bars["high"], bars["low"], bars["close"])[14:] == 0.0)
    assert np.all(ind.obv(bars["close"], bars["volume"]) == 1000.0)  # first bar's volume
    assert np.all(ind.roc(bars["close"])[10:] == 0.0)


@pytest.mark.parametrize("name", TALIB_NAMES)
def test_lookback_is_talibs_leading_nan_count(name: str) -> None:
    bars = random_walk(400, 7)
    spec = get_indicator(name)
    for params in [{}] + [p for n, p in CASES if n == name]:
        p = spec.validate(params)
        for out in talib_reference(name, bars, p):
            assert spec.lookback(p) == int(np.argmax(~np.isnan(out))), (name, p)


@pytest.mark.parametrize("name", TALIB_NAMES)
def test_defaults_and_outputs_match_talib_and_the_functions(name: str) -> None:
    spec = get_indicator(name)
    talib_params = talib.abstract.Function(name).parameters
    for param in spec.params:
        assert talib_params[param.name] == param.default, param.name
    fn = getattr(ind, name.lower())
    signature = inspect.signature(fn).parameters
    for param in spec.params:
        assert signature[param.name].default == param.default, param.name
    bars = random_walk(100, 8)
    assert len(talib_reference(name, bars, spec.defaults())) == len(spec.outputs)


# --- NaN inside the input ---------------------------------------------------------------

# (indicator, params, input that gets the NaN): cases where TA-Lib's result is defined by
# NaN arithmetic (running sums and recursions carry the NaN on), which we match exactly.
NAN_MATCHING: list[tuple[str, dict[str, Any], str]] = [
    ("SMA", {"timeperiod": 5}, "close"),
    ("EMA", {"timeperiod": 5}, "close"),
    ("BBANDS", {"timeperiod": 5}, "close"),
    ("MACD", {"fastperiod": 3, "slowperiod": 6, "signalperiod": 4}, "close"),
    ("ROC", {"timeperiod": 5}, "close"),
    ("STOCH", {}, "close"),
    ("ATR", {"timeperiod": 5}, "high"),
    ("ATR", {"timeperiod": 5}, "low"),
    ("OBV", {}, "volume"),
]

# Cases where TA-Lib's output after a NaN is an artefact: NaN comparisons are false (RSI turns
# into 0 for ever, the others skip the bar), TA-Lib 0.6's WMA resynchronises its running sums
# some bars later and resumes, and STOCH never reads the first fastk_period-1 closes. We make
# every value from the NaN on NaN instead. (indicator, params, input, NaN position)
NAN_DEVIATING: list[tuple[str, dict[str, Any], str, int]] = [
    ("RSI", {"timeperiod": 5}, "close", 60),
    ("WMA", {"timeperiod": 5}, "close", 60),
    ("ATR", {"timeperiod": 5}, "close", 60),
    ("STOCH", {}, "high", 60),
    ("STOCH", {}, "low", 60),
    ("STOCH", {}, "close", 2),
    ("OBV", {}, "close", 60),
]


def _with_nan(bars: Arrays, field: str, positions: list[int]) -> Arrays:
    out = dict(bars)
    out[field] = bars[field].copy()
    out[field][positions] = np.nan
    return out


@pytest.mark.parametrize("gap", [[0], [0, 1, 2], [40], [40, 41, 42], [6, 80]], ids=str)
@pytest.mark.parametrize("case", NAN_MATCHING, ids=lambda c: f"{c[0]}-{c[2]}")
def test_nan_in_the_input_matches_talib(
    case: tuple[str, dict[str, Any], str], gap: list[int]
) -> None:
    name, params, field = case
    bars = _with_nan(random_walk(120, 9), field, gap)
    p = _full(name, params)
    assert_all_close(ours(name, bars, p), talib_reference(name, bars, p), f"{name} {field}")


@pytest.mark.parametrize("case", NAN_DEVIATING, ids=lambda c: f"{c[0]}-{c[2]}-{c[3]}")
def test_nan_after_the_start_makes_the_rest_nan(
    case: tuple[str, dict[str, Any], str, int],
) -> None:
    name, params, field, at = case
    clean = random_walk(120, 10)
    bars = _with_nan(clean, field, [at])
    p = _full(name, params)
    for got, ref in zip(ours(name, bars, p), talib_reference(name, clean, p), strict=True):
        assert_close(got[:at], ref[:at], name)  # identical up to the gap
        assert np.isnan(got[at:]).all()
    # TA-Lib's result differs (numbers after the gap, or NaN from a later bar on).
    theirs = talib_reference(name, bars, p)[0]
    assert not np.array_equal(np.isnan(theirs), np.isnan(ours(name, bars, p)[0]))
    # Leading NaN are skipped like TA-Lib does, whatever the indicator.
    lead = _with_nan(clean, field, [0, 1])
    assert_all_close(ours(name, lead, p), talib_reference(name, lead, p), f"{name} leading")


def test_all_nan_and_empty_inputs() -> None:
    for name in TALIB_NAMES:
        spec = get_indicator(name)
        nan_bars = {k: np.full(30, np.nan) for k in ("high", "low", "close", "volume")}
        for out in spec.compute(nan_bars).values():
            assert out.shape == (30,) and np.isnan(out).all()
        empty = {k: np.empty(0) for k in ("high", "low", "close", "volume")}
        for out in spec.compute(empty).values():
            assert out.shape == (0,)


def test_bbands_keeps_the_variance_at_huge_prices() -> None:
    # Prices at 1e9 moving by about 1: E[x^2] - E[x]^2 would lose the variance to rounding
    # (eps * 1e18 is about 200); the pairwise update keeps it, and a flat window is exactly 0.
    rng = np.random.default_rng(11)
    close = 1e9 + np.cumsum(rng.normal(0, 1, 2000))
    close[1000:1030] = close[1000]
    upper, middle, _ = ind.bbands(close, 20, 1.0, 1.0)
    windows = np.lib.stride_tricks.sliding_window_view(close, 20)
    exact_std = (windows - windows.mean(axis=1, keepdims=True)).std(axis=1)
    assert np.max(np.abs((upper - middle)[19:] - exact_std)) < 1e-5
    assert np.all(upper[1019:1030] == close[1000])


# --- property tests ---------------------------------------------------------------------

SINGLE = ("SMA", "EMA", "WMA", "RSI", "ROC")


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(SINGLE),
    n=st.integers(0, 400),
    seed=st.integers(0, 2**32 - 1),
    period=st.integers(1, 120),
    vol=st.sampled_from([0.001, 0.02, 0.2]),
)
def test_random_walks_agree_with_talib(
    name: str, n: int, seed: int, period: int, vol: float
) -> None:
    spec = get_indicator(name)
    period = max(period, int(spec.params[0].minimum or 1))
    bars = random_walk(max(n, 1), seed, vol=vol)
    bars = {k: v[:n] for k, v in bars.items()}
    p = {"timeperiod": period}
    if n == 0:
        assert ours(name, bars, p)[0].shape == (0,)
        return
    assert_all_close(ours(name, bars, p), talib_reference(name, bars, p), name)


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(("MIDPOINT", "MIDPRICE", "WILLR")),
    n=st.integers(0, 400),
    seed=st.integers(0, 2**32 - 1),
    period=st.integers(2, 300),
    shape=st.sampled_from(["walk", "ticks", "up", "down"]),
)
def test_window_extremes_agree_with_talib(
    name: str, n: int, seed: int, period: int, shape: str
) -> None:
    """The block-wise extremes (indicators/_loops.py `window_high_low`) at any period, with
    ties (prices on a coarse tick) and monotone series (the extreme always at one end)."""
    bars = random_walk(max(n, 1), seed)
    bars = {k: v[:n] for k, v in bars.items()}
    if shape == "ticks":
        bars = {**bars, **{k: np.round(bars[k], 0) for k in ("high", "low", "close")}}
    elif shape in ("up", "down"):
        step = np.arange(n, dtype=np.float64) * (1.0 if shape == "up" else -1.0)
        bars = {**bars, "close": 500.0 + step, "high": 501.0 + step, "low": 499.0 + step}
    p = {"timeperiod": period}
    got, ref = ours(name, bars, p), (getattr(talib, name)(*talib_inputs(name, bars), period),)
    if name == "WILLR":
        assert_all_close(got, ref, name)
    else:  # max and min are exact: the same doubles as TA-Lib's
        assert np.array_equal(got[0], ref[0], equal_nan=True), name


@settings(max_examples=120, deadline=None)
@given(
    n=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    periods=st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 40)),
    nbdev=st.floats(0.0, 5.0),
)
def test_multi_output_indicators_agree_with_talib(
    n: int, seed: int, periods: tuple[int, int, int], nbdev: float
) -> None:
    bars = random_walk(n, seed, vol=0.03)
    a, b, c = periods
    fast, slow = sorted((a + 1, b + 1))
    if fast == slow:
        slow += 1
    cases = [
        ("MACD", {"fastperiod": fast, "slowperiod": slow, "signalperiod": c}),
        ("STOCH", {"fastk_period": a, "slowk_period": b, "slowd_period": c}),
        ("BBANDS", {"timeperiod": a + 1, "nbdevup": nbdev, "nbdevdn": 5.0 - nbdev}),
        ("ATR", {"timeperiod": a}),
    ]
    for name, p in cases:
        assert_all_close(ours(name, bars, p), talib_reference(name, bars, p), name)


# --- VWAP against pandas ----------------------------------------------------------------


def pandas_vwap(bars: Arrays, session: bool) -> np.ndarray:
    """The straightforward pandas computation: groupby day, cumsum, divide."""
    df = pd.DataFrame({k: bars[k] for k in ("high", "low", "close", "volume")})
    df["pv"] = (df["high"] + df["low"] + df["close"]) / 3 * df["volume"]
    if session:
        day = pd.Series(bars["time"]).dt.floor("D")
        num = df.groupby(day)["pv"].cumsum()
        den = df.groupby(day)["volume"].cumsum()
    else:
        num, den = df["pv"].cumsum(), df["volume"].cumsum()
    out = (num / den).to_numpy(np.float64, copy=True)
    out[den.to_numpy() == 0] = np.nan
    return out


def intraday(n: int, seed: int) -> Arrays:
    """Bars at irregular minutes over several UTC days, some with zero volume."""
    rng = np.random.default_rng(seed)
    bars = random_walk(n, seed)
    steps = rng.integers(1, 45, n).astype("timedelta64[m]")
    bars["time"] = (np.datetime64("2023-12-30T20:00", "ns") + np.cumsum(steps)).astype(
        "datetime64[ns]"
    )
    bars["volume"][rng.random(n) < 0.1] = 0.0
    return bars


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_session_vwap_matches_pandas(seed: int) -> None:
    bars = intraday(4000, seed)
    ref = pandas_vwap(bars, session=True)
    got = ind.vwap(bars["high"], bars["low"], bars["close"], bars["volume"], bars["time"])
    assert_close(got, ref, "session")
    # The same through the registry, and with integer epoch times in either unit.
    spec = get_indicator("VWAP")
    assert_close(spec.compute(bars)["value"], ref, "registry")
    for unit in ("s", "ms", "ns"):
        epoch = bars["time"].astype(f"datetime64[{unit}]").astype(np.int64)
        hlcv = (bars["high"], bars["low"], bars["close"], bars["volume"])
        assert_close(ind.vwap(*hlcv, epoch, time_unit=unit), ref, unit)


def test_cumulative_vwap_matches_pandas() -> None:
    for bars in (intraday(4000, 3), demo_stocks()["MSFT"]):
        ref = pandas_vwap(bars, session=False)
        got = get_indicator("VWAP").compute(bars, {"anchor": "cumulative"})["value"]
        assert_close(got, ref, "cumulative")


def test_session_vwap_on_daily_bars_is_the_typical_price() -> None:
    bars = demo_stocks()["IBM"]
    got = get_indicator("VWAP").compute(bars)["value"]
    assert_close(got, (bars["high"] + bars["low"] + bars["close"]) / 3, "daily")


def test_session_vwap_edges() -> None:
    day = np.datetime64("1969-12-31T00:00", "m")
    times = day + np.array([0, 600, 1439, 1440, 1441, 2880], dtype="timedelta64[m]")
    ones = np.ones(6)
    price = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 5.0])
    volume = np.array([1.0, 1.0, 2.0, 0.0, 3.0, 1.0])
    got = ind.vwap(price, price, price, volume, times)
    # 23:59 still belongs to the day before 1970 (floor, not truncation); 00:00 starts a day.
    np.testing.assert_allclose(got, [1.0, 1.5, 2.25, np.nan, 20.0, 5.0])
    # A NaN bar spoils the rest of its own day only.
    volume[1] = np.nan
    got = ind.vwap(price, price, price, volume, times)
    assert got[0] == 1.0 and np.isnan(got[1:3]).all() and got[4] == 20.0 and got[5] == 5.0
    with pytest.raises(ValueError, match="ascending"):
        ind.vwap(ones, ones, ones, ones, times[::-1])
    with pytest.raises(ValueError, match="times is required"):
        ind.vwap(ones, ones, ones, ones)
    with pytest.raises(ValueError, match="times must be datetime64"):
        ind.vwap(ones, ones, ones, ones, np.linspace(0, 1, 6))


def test_session_vwap_keeps_small_days_exact_after_huge_ones() -> None:
    # A day with 1e12 traded then days trading single shares: a running sum minus the total
    # at the day start would leave rounding of the order 1e12 * eps on the small days.
    times = np.datetime64("2024-01-01", "h") + np.arange(96).astype("timedelta64[h]")
    rng = np.random.default_rng(12)
    price = 100 + rng.normal(size=96)
    volume = np.where(np.arange(96) < 24, 1e12, rng.integers(1, 3, 96).astype(float))
    bars = {"high": price, "low": price, "close": price, "volume": volume, "time": times}
    got = ind.vwap(price, price, price, volume, times)
    ref = pandas_vwap(bars, session=True)
    assert np.max(np.abs(got - ref)) < 1e-11


# --- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("SMA", {"timeperiod": 0}, "timeperiod must be between 1 and"),
        ("EMA", {"timeperiod": MAX_PERIOD + 1}, "timeperiod must be between"),
        ("RSI", {"timeperiod": 1}, "timeperiod must be between 2 and"),
        ("WMA", {"timeperiod": 2.5}, "timeperiod must be an integer"),
        ("ROC", {"timeperiod": True}, "timeperiod must be an integer"),
        ("MACD", {"fastperiod": 26, "slowperiod": 26}, "fastperiod .* less than slowperiod"),
        ("MACD", {"fastperiod": 30}, "fastperiod .* less than slowperiod"),
        ("MACD", {"signalperiod": 0}, "signalperiod must be between 1"),
        ("STOCH", {"slowd_period": 0}, "slowd_period must be between 1"),
        ("STOCH", {"fastk_period": 5000}, "fastk_period must be between"),
        ("BBANDS", {"nbdevup": -1.0}, "nbdevup must be between 0 and 10"),
        ("BBANDS", {"nbdevdn": float("nan")}, "nbdevdn must be between"),
        ("BBANDS", {"nbdevdn": "2"}, "nbdevdn must be a number"),
        ("ATR", {"period": 14}, "unknown parameter 'period' for ATR; expected: timeperiod"),
        ("OBV", {"timeperiod": 3}, "unknown parameter 'timeperiod' for OBV"),
        ("VWAP", {"anchor": "weekly"}, "anchor must be one of session, cumulative"),
    ],
)
def test_invalid_parameters_are_rejected_by_name(
    name: str, params: dict[str, Any], message: str
) -> None:
    spec = get_indicator(name)
    for call in (spec.validate, spec.lookback, spec.warmup_bars):
        with pytest.raises(ValueError, match=message):
            call(params)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: ind.sma(x, 0), "timeperiod"),
        (lambda x: ind.ema(x, 1001), "timeperiod"),
        (lambda x: ind.macd(x, 12, 12), "fastperiod"),
        (lambda x: ind.macd(x, 12, 26, 0), "signalperiod"),
        (lambda x: ind.bbands(x, 5, 11.0), "nbdevup"),
        (lambda x: ind.stoch(x, x, x, 0), "fastk_period"),
        (lambda x: ind.rsi(x[:, None]), "close must be one-dimensional"),
        (lambda x: ind.atr(x, x[:-1], x), "same length"),
        (lambda x: ind.vwap(x, x, x, x, anchor="daily"), "anchor"),
    ],
)
def test_functions_validate_too(call: Callable[[np.ndarray], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(np.linspace(1.0, 2.0, 50))


def test_registry_lookup_and_description() -> None:
    assert get_indicator("macd") is INDICATORS["MACD"]
    with pytest.raises(ValueError, match="unknown indicator 'MAMA'"):
        get_indicator("MAMA")
    with pytest.raises(ValueError, match="needs input 'high'"):
        get_indicator("ATR").compute({"close": np.ones(3)})
    described = {d["name"]: d for d in ind.describe()}
    assert set(described) == set(INDICATORS) >= {*TALIB_NAMES, "VWAP"}
    bb = {p["name"]: p for p in described["BBANDS"]["params"]}
    assert bb["timeperiod"] == {
        "name": "timeperiod",
        "type": "int",
        "default": 20,
        "minimum": 2,
        "maximum": MAX_PERIOD,
        "choices": [],
        "description": "SMA period.",
        "argument": "period",
        "required": False,
    }
    assert described["VWAP"]["params"][0]["choices"] == ["session", "cumulative"]
    assert get_indicator("SMA").validate({"timeperiod": np.int64(20)}) == {"timeperiod": 20}


def test_inputs_are_left_untouched_and_any_numeric_input_works() -> None:
    bars = random_walk(3000, 13)
    before = {k: v.copy() for k, v in bars.items()}
    anchor = {"anchor": datetime(2024, 1, 1, 12, tzinfo=UTC)}
    params = {name: anchor if name == "ANCHORED_VWAP" else {} for name in INDICATORS}
    results = {name: spec.compute(bars, params[name]) for name, spec in INDICATORS.items()}
    for key, value in before.items():
        np.testing.assert_array_equal(bars[key], value, err_msg=key)
    # Lists, integer volumes and pandas Series give the same numbers as float64 arrays.
    as_list = {k: (v.tolist() if k != "time" else v) for k, v in bars.items()}
    as_list["volume"] = bars["volume"].astype(np.int64)
    as_list["close"] = pd.Series(bars["close"])
    for name, spec in INDICATORS.items():
        for out, value in spec.compute(as_list, params[name]).items():
            np.testing.assert_array_equal(value, results[name][out], err_msg=name)
