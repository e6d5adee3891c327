"""The catalogue beyond the first eleven indicators, against TA-Lib (the oracle) where TA-Lib
has the indicator, and against plain-loop references written here from the cited definitions
where it does not.

Every TA-Lib comparison demands identical NaN positions and |x - ref| <= 1e-12 + 1e-9 max|ref|
(`assert_close`), on the demo stocks, synthetic walks (calm, volatile, chunk-crossing, flat,
prices near 1e-6 and 1e9, short), series with price gaps and leading NaN, and hypothesis
series.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import talib
import talib.abstract
from hypothesis import given, settings
from hypothesis import strategies as st

import indicators as ind
from indicators import INDICATORS, get_indicator
from tests.test_indicators_talib import (
    SYNTHETIC,
    TICKERS,
    Arrays,
    assert_all_close,
    assert_close,
    demo_stocks,
    intraday,
    random_walk,
)
from tests.test_indicators_warmup import _check_range, _slice, regime_change

#: (indicator, parameters) compared with TA-Lib.
TALIB_CASES: list[tuple[str, dict[str, Any]]] = [
    ("DEMA", {}),
    ("DEMA", {"timeperiod": 2}),
    ("DEMA", {"timeperiod": 10}),
    ("TEMA", {}),
    ("TEMA", {"timeperiod": 5}),
    ("TRIMA", {}),
    ("TRIMA", {"timeperiod": 1}),
    ("TRIMA", {"timeperiod": 4}),
    ("TRIMA", {"timeperiod": 7}),
    ("KAMA", {}),
    ("KAMA", {"timeperiod": 2}),
    ("KAMA", {"timeperiod": 10}),
    ("T3", {}),
    ("T3", {"timeperiod": 10, "vfactor": 0.3}),
    ("MOM", {}),
    ("MOM", {"timeperiod": 1}),
    ("CMO", {}),
    ("CMO", {"timeperiod": 2}),
    ("APO", {}),
    ("APO", {"matype": 0}),
    ("APO", {"fastperiod": 20, "slowperiod": 5, "matype": 3}),
    ("APO", {"matype": 2}),
    ("APO", {"matype": 4}),
    ("APO", {"matype": 5}),
    ("APO", {"matype": 6}),
    ("APO", {"matype": 8}),
    ("PPO", {}),
    ("PPO", {"matype": 0}),
    ("PPO", {"fastperiod": 3, "slowperiod": 8, "matype": 6}),
    ("TRIX", {}),
    ("TRIX", {"timeperiod": 5}),
    ("STOCHF", {}),
    ("STOCHF", {"fastk_period": 14, "fastd_period": 1}),
    ("STOCHF", {"fastd_matype": 1}),
    ("STOCHRSI", {}),
    ("STOCHRSI", {"timeperiod": 10, "fastk_period": 14, "fastd_period": 3, "fastd_matype": 1}),
    ("WILLR", {}),
    ("WILLR", {"timeperiod": 2}),
    ("CCI", {}),
    ("CCI", {"timeperiod": 20}),
    ("MFI", {}),
    ("MFI", {"timeperiod": 5}),
    ("ADX", {}),
    ("ADX", {"timeperiod": 5}),
    ("ADXR", {}),
    ("ADXR", {"timeperiod": 5}),
    ("DX", {}),
    ("DX", {"timeperiod": 2}),
    ("PLUS_DI", {}),
    ("PLUS_DI", {"timeperiod": 30}),
    ("MINUS_DI", {}),
    ("MINUS_DI", {"timeperiod": 3}),
    ("AROON", {}),
    ("AROON", {"timeperiod": 25}),
    ("AROONOSC", {}),
    ("AROONOSC", {"timeperiod": 5}),
    ("ULTOSC", {}),
    ("ULTOSC", {"timeperiod1": 20, "timeperiod2": 3, "timeperiod3": 9}),
    ("BOP", {}),
    ("NATR", {}),
    ("NATR", {"timeperiod": 2}),
    ("TRANGE", {}),
    ("STDDEV", {}),
    ("STDDEV", {"timeperiod": 20, "nbdev": 2.0}),
    ("VAR", {}),
    ("VAR", {"timeperiod": 1}),
    ("VAR", {"timeperiod": 30}),
    ("SAR", {}),
    ("SAR", {"acceleration": 0.05, "maximum": 0.3}),
    ("SAR", {"acceleration": 0.3, "maximum": 0.2}),
    ("AD", {}),
    ("ADOSC", {}),
    ("ADOSC", {"fastperiod": 10, "slowperiod": 3}),
    ("LINEARREG", {}),
    ("LINEARREG", {"timeperiod": 2}),
    ("LINEARREG_SLOPE", {}),
    ("LINEARREG_SLOPE", {"timeperiod": 30}),
    ("MIDPOINT", {}),
    ("MIDPOINT", {"timeperiod": 3}),
    ("MIDPRICE", {}),
    ("MIDPRICE", {"timeperiod": 3}),
]
TALIB_NEW = sorted({name for name, _ in TALIB_CASES})
BEYOND = ("KELTNER", "DONCHIAN", "SUPERTREND", "ICHIMOKU", "ANCHORED_VWAP", "VWAP_BANDS")


def _id(case: tuple[str, dict[str, Any]]) -> str:
    return case[0] + "".join(f"-{v}" for v in case[1].values())


def talib_ref(name: str, bars: Arrays, params: dict[str, Any]) -> tuple[np.ndarray, ...]:
    """TA-Lib's outputs through its abstract API, under TA-Lib's own parameter names."""
    fn = talib.abstract.Function(name)
    inputs = {k: bars[k] for k in ("open", "high", "low", "close", "volume")}
    out = fn(inputs, **params)
    return tuple(out) if isinstance(out, list) else (out,)


def ours(name: str, bars: Arrays, params: dict[str, Any]) -> tuple[np.ndarray, ...]:
    spec = get_indicator(name)
    out = spec.compute(bars, params)
    return tuple(out[o] for o in spec.outputs)


def gaps(n: int, seed: int) -> Arrays:
    """A walk with a 5-20% jump every 50 bars (overnight and weekend gaps) and flat stretches."""
    bars = random_walk(n, seed, vol=0.01)
    rng = np.random.default_rng(seed)
    factor = np.ones(n)
    factor[::50] = np.exp(rng.choice([-1, 1], len(factor[::50])) * rng.uniform(0.05, 0.2))
    factor = np.cumprod(factor)
    for key in ("open", "high", "low", "close"):
        bars[key] = bars[key] * factor
    for lo in range(300, n, 700):  # 30 bars where nothing trades at one price
        for key in ("open", "high", "low", "close"):
            bars[key][lo : lo + 30] = bars["close"][lo]
        bars["volume"][lo : lo + 30] = 0.0
    return bars


def leading_nan(n: int, seed: int) -> Arrays:
    bars = random_walk(n, seed)
    for key in ("open", "high", "low", "close", "volume"):
        bars[key] = bars[key].copy()
        bars[key][:3] = np.nan
    return bars


SERIES = {**SYNTHETIC, "gaps": lambda: gaps(3000, 14), "leading-nan": lambda: leading_nan(500, 15)}


# --- TA-Lib ------------------------------------------------------------------------------


@pytest.mark.parametrize("ticker", TICKERS)
@pytest.mark.parametrize("case", TALIB_CASES, ids=_id)
def test_matches_talib_on_demo_stocks(ticker: str, case: tuple[str, dict[str, Any]]) -> None:
    name, params = case
    bars = demo_stocks()[ticker]
    p = get_indicator(name).validate(params)
    assert_all_close(ours(name, bars, p), talib_ref(name, bars, p), f"{ticker} {name}")


def _ill_conditioned(name: str, bars: Arrays, p: dict[str, Any]) -> np.ndarray | None:
    """Bars where the value is 0/0 and TA-Lib returns rounding noise (we return 0)."""
    if name == "CCI":
        tp = (bars["high"] + bars["low"] + bars["close"]) / 3
        n = p["timeperiod"]
        flat = np.zeros(len(tp), dtype=bool)
        windows = np.lib.stride_tricks.sliding_window_view(tp, n)
        flat[n - 1 :] = windows.max(axis=1) == windows.min(axis=1)
        return flat
    if name == "STOCHRSI":
        rsi = talib.RSI(bars["close"], p["timeperiod"])
        n = p["fastk_period"]
        flat = np.zeros(len(rsi), dtype=bool)
        windows = np.lib.stride_tricks.sliding_window_view(rsi, n)
        flat[n - 1 :] = windows.max(axis=1) - windows.min(axis=1) <= 1e-9
        return flat
    return None


@pytest.mark.parametrize("kind", SERIES)
@pytest.mark.parametrize("case", TALIB_CASES, ids=_id)
def test_matches_talib_on_synthetic_series(kind: str, case: tuple[str, dict[str, Any]]) -> None:
    name, params = case
    bars = SERIES[kind]()
    p = get_indicator(name).validate(params)
    got, ref = ours(name, bars, p), talib_ref(name, bars, p)
    noisy = _ill_conditioned(name, bars, p) if kind == "gaps" else None
    if noisy is not None:
        assert noisy.sum() > 10  # the gaps series has such stretches
        assert np.all(got[0][noisy] == 0.0)  # %K (CCI) is 0 there; %D averages it
        keep = ~noisy
        got, ref = (g[keep] for g in got[:1]), (r[keep] for r in ref[:1])
        got, ref = tuple(got), tuple(ref)
    assert_all_close(got, ref, f"{kind} {name}")


@pytest.mark.parametrize("name", TALIB_NEW)
def test_lookback_defaults_and_outputs_are_talibs(name: str) -> None:
    spec = get_indicator(name)
    fn = talib.abstract.Function(name)
    assert {p.name: p.default for p in spec.params} == dict(fn.parameters)
    assert len(spec.outputs) == len(fn.output_names)
    bars = random_walk(600, 16)
    for params in [{}] + [p for n, p in TALIB_CASES if n == name]:
        p = spec.validate(params)
        fn.set_parameters(p)
        assert spec.lookback(p) == fn.lookback, (name, p)
        for out in talib_ref(name, bars, p):
            assert spec.lookback(p) == int(np.argmax(~np.isnan(out))), (name, p)


SINGLE_PERIOD = [
    (name, int(get_indicator(name).params[0].minimum or 1))
    for name in TALIB_NEW
    if [p.name for p in get_indicator(name).params] == ["timeperiod"]
]


@settings(max_examples=200, deadline=None)
@given(
    case=st.sampled_from(SINGLE_PERIOD),
    n=st.integers(1, 400),
    seed=st.integers(0, 2**32 - 1),
    period=st.integers(1, 60),
    vol=st.sampled_from([0.0, 0.001, 0.02, 0.2]),
    level=st.sampled_from([1e-6, 1.0, 100.0, 1e9]),
)
def test_random_series_agree_with_talib(
    case: tuple[str, int], n: int, seed: int, period: int, vol: float, level: float
) -> None:
    name, minimum = case
    bars = random_walk(n, seed, level=level, vol=vol)
    p = {"timeperiod": max(period, minimum)}
    assert_all_close(ours(name, bars, p), talib_ref(name, bars, p), f"{name} {p}")


@settings(max_examples=120, deadline=None)
@given(
    n=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    periods=st.tuples(st.integers(2, 30), st.integers(2, 30), st.integers(1, 30)),
    matype=st.sampled_from([0, 1, 2, 3, 4, 5, 6, 8]),
    factor=st.floats(0.0, 1.0),
)
def test_multi_parameter_indicators_agree_with_talib(
    n: int, seed: int, periods: tuple[int, int, int], matype: int, factor: float
) -> None:
    bars = random_walk(n, seed, vol=0.03)
    a, b, c = periods
    cases = [
        ("APO", {"fastperiod": a, "slowperiod": b, "matype": matype}),
        ("PPO", {"fastperiod": a, "slowperiod": b, "matype": matype}),
        ("STOCHF", {"fastk_period": a, "fastd_period": c, "fastd_matype": matype}),
        ("STOCHRSI", {"timeperiod": a, "fastk_period": b, "fastd_period": c}),
        ("T3", {"timeperiod": a, "vfactor": factor}),
        ("ULTOSC", {"timeperiod1": a, "timeperiod2": b, "timeperiod3": c}),
        ("ADOSC", {"fastperiod": a, "slowperiod": b}),
        ("SAR", {"acceleration": factor / 5, "maximum": factor}),
        ("STDDEV", {"timeperiod": a, "nbdev": factor * 3}),
    ]
    for name, p in cases:
        assert_all_close(ours(name, bars, p), talib_ref(name, bars, p), f"{name} {p}")


# --- warm-up ----------------------------------------------------------------------------

FINITE_WARMUP = [
    case
    for case in TALIB_CASES + [(name, {}) for name in ("KELTNER", "DONCHIAN", "ICHIMOKU")]
    if get_indicator(case[0]).warmup_bars(case[1]) is not None
]


@pytest.mark.parametrize("case", FINITE_WARMUP, ids=_id)
def test_warmup_reproduces_the_whole_history(case: tuple[str, dict[str, Any]]) -> None:
    name, params = case
    warmup = get_indicator(name).warmup_bars(params)
    assert warmup is not None
    series = [demo_stocks()["AAPL"], random_walk(warmup + 2000, 30, vol=0.03)]
    series.append(regime_change(2 * warmup + 1000))
    checked = 0
    for bars in series:
        n = len(bars["close"])
        for start in sorted({warmup, warmup + 7, n // 2, n - 200}):
            if warmup <= start < n:
                _check_range(name, params, bars, start, min(n, start + 200))
                checked += 1
    assert checked >= 4


@pytest.mark.parametrize("name", ["SAR", "AD", "SUPERTREND"])
def test_path_dependent_indicators_read_the_whole_history(name: str) -> None:
    spec = get_indicator(name)
    assert spec.warmup_bars() is None
    bars = demo_stocks()["MSFT"]
    full = spec.compute(bars)
    part = spec.compute(_slice(bars, 1000, 2000))
    # A late start gives other values for a while at least (the state carries history).
    assert any(
        not np.allclose(part[o][:50], full[o][1000:1050], equal_nan=True) for o in spec.outputs
    )


# --- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("KAMA", {"timeperiod": 1}, "timeperiod must be between 2 and"),
        ("T3", {"vfactor": 1.5}, "vfactor must be between 0 and 1"),
        ("APO", {"matype": 7}, "matype must be one of .*MAMA is not supported"),
        ("PPO", {"matype": 9}, "matype must be between 0 and 8"),
        ("STOCHRSI", {"fastd_matype": 7}, "fastd_matype must be one of"),
        ("ULTOSC", {"timeperiod3": 0}, "timeperiod3 must be between 1"),
        ("SAR", {"maximum": -0.1}, "maximum must be between 0 and 1"),
        ("SAR", {"acceleration": "fast"}, "acceleration must be a number"),
        ("ADOSC", {"slowperiod": 1}, "slowperiod must be between 2"),
        ("KELTNER", {"multiplier": 11.0}, "multiplier must be between 0 and 10"),
        ("ICHIMOKU", {"displacement": -1}, "displacement must be between 0"),
        ("ANCHORED_VWAP", {}, "anchor is required for ANCHORED_VWAP"),
        ("ANCHORED_VWAP", {"anchor": datetime(2024, 1, 1)}, "anchor must be a timezone-aware"),
        ("VWAP_BANDS", {"anchor": "weekly"}, "anchor must be one of session, cumulative"),
        ("MIDPRICE", {"period": 3}, "unknown parameter 'period' for MIDPRICE"),
    ],
)
def test_invalid_parameters_are_rejected_by_name(
    name: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        get_indicator(name).validate(params)


def test_every_indicator_has_a_function_with_the_registry_defaults() -> None:
    for name, spec in INDICATORS.items():
        fn = getattr(ind, name.lower())
        assert fn is spec.function, name
        for param in spec.params:
            if not param.required:
                assert _default(fn, param.name) == param.default, (name, param.name)
        if name in BEYOND:
            assert spec.source, f"{name} cites no source"


def _default(fn: Any, name: str) -> Any:
    import inspect

    return inspect.signature(fn).parameters[name].default


# --- beyond TA-Lib: plain-loop references from the cited definitions ---------------------


def loop_ema(x: list[float], n: int) -> list[float]:
    """EMA seeded with the mean of the first n values (as TA-Lib and this package)."""
    out = [math.nan] * len(x)
    if len(x) < n:
        return out
    out[n - 1] = sum(x[:n]) / n
    k = 2.0 / (n + 1)
    for t in range(n, len(x)):
        out[t] = out[t - 1] + k * (x[t] - out[t - 1])
    return out


def loop_atr(h: list[float], lo: list[float], c: list[float], n: int) -> list[float]:
    """Wilder's ATR: mean true range of bars 1..n, then (prev (n-1) + tr) / n."""
    out = [math.nan] * len(c)
    tr = [math.nan] + [
        max(h[t] - lo[t], abs(h[t] - c[t - 1]), abs(lo[t] - c[t - 1])) for t in range(1, len(c))
    ]
    if len(c) <= n:
        return out
    out[n] = sum(tr[1 : n + 1]) / n
    for t in range(n + 1, len(c)):
        out[t] = (out[t - 1] * (n - 1) + tr[t]) / n
    return out


def loop_keltner(b: Arrays, n: int, a: int, k: float) -> tuple[list[float], ...]:
    h, lo, c = (b[x].tolist() for x in ("high", "low", "close"))
    mid, atr = loop_ema(c, n), loop_atr(h, lo, c, a)
    return (
        [m + k * r for m, r in zip(mid, atr, strict=True)],
        mid,
        [m - k * r for m, r in zip(mid, atr, strict=True)],
    )


def loop_donchian(b: Arrays, n: int) -> tuple[list[float], ...]:
    h, lo = b["high"].tolist(), b["low"].tolist()
    up, down = [math.nan] * len(h), [math.nan] * len(h)
    for t in range(n - 1, len(h)):
        up[t] = max(h[t - n + 1 : t + 1])
        down[t] = min(lo[t - n + 1 : t + 1])
    return up, [(u + d) / 2 for u, d in zip(up, down, strict=True)], down


def loop_supertrend(b: Arrays, n: int, k: float) -> tuple[list[float], list[float]]:
    """Pine Script v5's ta.supertrend, with direction +1 up / -1 down and TA-Lib's ATR."""
    h, lo, c = (b[x].tolist() for x in ("high", "low", "close"))
    atr = loop_atr(h, lo, c, n)
    line, direction = [math.nan] * len(c), [math.nan] * len(c)
    prev_upper = prev_lower = prev_line = math.nan
    for t in range(len(c)):
        if math.isnan(atr[t]):
            continue
        src = (h[t] + lo[t]) / 2
        upper, lower = src + k * atr[t], src - k * atr[t]
        if not math.isnan(prev_line):
            if not (lower > prev_lower or c[t - 1] < prev_lower):
                lower = prev_lower
            if not (upper < prev_upper or c[t - 1] > prev_upper):
                upper = prev_upper
        if math.isnan(prev_line):
            d = -1.0  # Pine: the first bar is a downtrend (its direction 1)
        elif prev_line == prev_upper:
            d = 1.0 if c[t] > upper else -1.0
        else:
            d = -1.0 if c[t] < lower else 1.0
        line[t] = lower if d > 0 else upper
        direction[t] = d
        prev_upper, prev_lower, prev_line = upper, lower, line[t]
    return line, direction


def loop_ichimoku(b: Arrays, t9: int, k26: int, b52: int, s: int) -> tuple[list[float], ...]:
    h, lo, c = (b[x].tolist() for x in ("high", "low", "close"))
    m = len(c)

    def mid(t: int, n: int) -> float:
        return (
            (max(h[t - n + 1 : t + 1]) + min(lo[t - n + 1 : t + 1])) / 2 if t >= n - 1 else math.nan
        )

    tenkan = [mid(t, t9) for t in range(m)]
    kijun = [mid(t, k26) for t in range(m)]
    span_a = [(tenkan[t - s] + kijun[t - s]) / 2 if t >= s else math.nan for t in range(m)]
    span_b = [mid(t - s, b52) if t >= s else math.nan for t in range(m)]
    return tenkan, kijun, span_a, span_b, list(c)


def loop_vwap_bands(b: Arrays, k: float, session: bool) -> tuple[list[float], ...]:
    """VWAP and the volume-weighted standard deviation around it, summed afresh each bar."""
    days = b["time"].astype("datetime64[D]")
    h, lo, c, v = (b[x].tolist() for x in ("high", "low", "close", "volume"))
    upper, mid, lower = [], [], []
    first = 0
    for t in range(len(c)):
        if session and t and days[t] != days[t - 1]:
            first = t
        tps = [(h[j] + lo[j] + c[j]) / 3 for j in range(first, t + 1)]
        vols = v[first : t + 1]
        total = sum(vols)
        if total == 0:
            upper.append(math.nan), mid.append(math.nan), lower.append(math.nan)
            continue
        vwap = sum(p * q for p, q in zip(tps, vols, strict=True)) / total
        var = sum(q * (p - vwap) ** 2 for p, q in zip(tps, vols, strict=True)) / total
        upper.append(vwap + k * math.sqrt(var)), mid.append(vwap)
        lower.append(vwap - k * math.sqrt(var))
    return upper, mid, lower


def loop_anchored_vwap(b: Arrays, anchor: np.datetime64) -> list[float]:
    out, pv, vv = [], 0.0, 0.0
    for t in range(len(b["close"])):
        if b["time"][t] < anchor:
            out.append(math.nan)
            continue
        pv += b["volume"][t] * (b["high"][t] + b["low"][t] + b["close"][t]) / 3
        vv += b["volume"][t]
        out.append(pv / vv if vv else math.nan)
    return out


def _arrays(parts: tuple[list[float], ...] | list[float]) -> tuple[np.ndarray, ...]:
    if parts and isinstance(parts[0], list):
        return tuple(np.array(p, dtype=float) for p in parts)
    return (np.array(parts, dtype=float),)


BEYOND_CASES = [
    ("KELTNER", {}, lambda b: loop_keltner(b, 20, 10, 2.0)),
    (
        "KELTNER",
        {"timeperiod": 5, "atr_period": 30, "multiplier": 1.5},
        lambda b: loop_keltner(b, 5, 30, 1.5),
    ),
    ("DONCHIAN", {}, lambda b: loop_donchian(b, 20)),
    ("DONCHIAN", {"timeperiod": 1}, lambda b: loop_donchian(b, 1)),
    ("SUPERTREND", {}, lambda b: loop_supertrend(b, 10, 3.0)),
    ("SUPERTREND", {"timeperiod": 3, "multiplier": 1.0}, lambda b: loop_supertrend(b, 3, 1.0)),
    ("ICHIMOKU", {}, lambda b: loop_ichimoku(b, 9, 26, 52, 26)),
    (
        "ICHIMOKU",
        {"tenkan_period": 3, "kijun_period": 5, "senkou_b_period": 8, "displacement": 0},
        lambda b: loop_ichimoku(b, 3, 5, 8, 0),
    ),
    ("VWAP_BANDS", {}, lambda b: loop_vwap_bands(b, 1.0, True)),
    (
        "VWAP_BANDS",
        {"anchor": "cumulative", "multiplier": 2.5},
        lambda b: loop_vwap_bands(b, 2.5, False),
    ),
]


@pytest.mark.parametrize("kind", ["walk", "walk-volatile", "flat", "tiny", "huge", "short"])
@pytest.mark.parametrize("case", BEYOND_CASES, ids=lambda c: _id(c[:2]))
def test_beyond_talib_matches_the_loop_reference(kind: str, case: tuple[Any, ...]) -> None:
    name, params, reference = case
    bars = SYNTHETIC[kind]()
    assert_all_close(ours(name, bars, params), _arrays(reference(bars)), f"{kind} {name}")


@pytest.mark.parametrize("case", BEYOND_CASES, ids=lambda c: _id(c[:2]))
def test_beyond_talib_on_demo_stocks_and_intraday_days(case: tuple[Any, ...]) -> None:
    name, params, reference = case
    for bars in (demo_stocks()["AAPL"], intraday(3000, 17)):
        assert_all_close(ours(name, bars, params), _arrays(reference(bars)), name)


@pytest.mark.parametrize("at", ["2023-12-31T00:00", "2024-01-01T10:07", "2024-01-02T00:00"])
def test_anchored_vwap_matches_the_loop_reference(at: str) -> None:
    bars = intraday(3000, 18)
    anchor = np.datetime64(at, "ns")
    when = datetime.fromisoformat(at).replace(tzinfo=UTC)
    got = get_indicator("ANCHORED_VWAP").compute(bars, {"anchor": when})["value"]
    assert_close(got, np.array(loop_anchored_vwap(bars, anchor)), at)
    # The same through epoch milliseconds, as the loader passes times.
    ms = {**bars, "time": bars["time"].astype("datetime64[ms]").astype(np.int64)}
    assert_close(get_indicator("ANCHORED_VWAP").compute(ms, {"anchor": when})["value"], got, "ms")


# Worked examples, computed by hand from the definitions (small enough to check on paper).


def _bars(high: list[float], low: list[float], close: list[float]) -> Arrays:
    n = len(close)
    times = np.datetime64("2024-01-02T14:30", "ns") + np.arange(n) * np.timedelta64(60, "s")
    return {
        "open": np.array(close, dtype=float),
        "high": np.array(high, dtype=float),
        "low": np.array(low, dtype=float),
        "close": np.array(close, dtype=float),
        "volume": np.ones(n),
        "time": times,
    }


def test_worked_example_donchian() -> None:
    b = _bars([10, 12, 11, 15, 13], [8, 9, 7, 12, 11], [9, 11, 8, 14, 12])
    upper, middle, lower = ind.donchian(b["high"], b["low"], 3)
    np.testing.assert_array_equal(upper, [np.nan, np.nan, 12, 15, 15])
    np.testing.assert_array_equal(lower, [np.nan, np.nan, 7, 7, 7])
    np.testing.assert_array_equal(middle, [np.nan, np.nan, 9.5, 11, 11])


def test_worked_example_anchored_vwap() -> None:
    # Typical prices 10, 20, 30 with volumes 1, 1, 2, anchored on the second bar:
    # (20*1) / 1 = 20, then (20*1 + 30*2) / 3 = 80/3.
    b = _bars([10, 20, 30], [10, 20, 30], [10, 20, 30])
    b["volume"] = np.array([1.0, 1.0, 2.0])
    got = ind.anchored_vwap(
        b["high"], b["low"], b["close"], b["volume"], b["time"], b["time"][1], time_unit="ns"
    )
    np.testing.assert_allclose(got, [np.nan, 20.0, 80.0 / 3.0])


def test_worked_example_vwap_bands() -> None:
    # Prices 10 and 20, volumes 1 and 3: VWAP 17.5; variance (100 + 3*400)/4 - 17.5^2 = 18.75.
    b = _bars([10, 20], [10, 20], [10, 20])
    b["volume"] = np.array([1.0, 3.0])
    upper, vwap, lower = ind.vwap_bands(
        b["high"], b["low"], b["close"], b["volume"], b["time"], multiplier=2.0, time_unit="ns"
    )
    np.testing.assert_allclose(vwap, [10.0, 17.5])
    np.testing.assert_allclose(upper, [10.0, 17.5 + 2 * math.sqrt(18.75)])
    np.testing.assert_allclose(lower, [10.0, 17.5 - 2 * math.sqrt(18.75)])


def test_worked_example_supertrend_flips_up_then_down() -> None:
    # Period 1: ATR = the true range of each bar from bar 1 on; multiplier 1.
    # Bar 1: mid 10, TR 2 -> bands 12 / 8; the first bar is a downtrend, line = 12.
    # Bar 2: mid 12, TR 3 -> basic 15 / 9; final upper stays 12 (15 is not lower, the
    #   previous close 10 is not above 12), final lower 9; close 13 > 12 -> up, line = 9.
    # Bar 3: mid 9.5, TR 6 -> basic 15.5 / 3.5; final upper 15.5 (previous close 13 > 12),
    #   final lower stays 9; close 8 < 9 -> down, line = 15.5.
    b = _bars([11, 11, 13, 12], [9, 9, 11, 7], [10, 10, 13, 8])
    line, direction = ind.supertrend(b["high"], b["low"], b["close"], 1, 1.0)
    np.testing.assert_array_equal(direction, [np.nan, -1, 1, -1])
    np.testing.assert_allclose(line, [np.nan, 12, 9, 15.5])


def test_worked_example_ichimoku_shift() -> None:
    # Periods 1/2/2 and displacement 1: tenkan = bar midpoints, spans appear one bar later.
    b = _bars([2, 4, 6], [0, 2, 2], [1, 3, 5])
    tenkan, kijun, span_a, span_b, chikou = ind.ichimoku(
        b["high"], b["low"], b["close"], 1, 2, 2, 1
    )
    np.testing.assert_array_equal(tenkan, [1, 3, 4])
    np.testing.assert_array_equal(kijun, [np.nan, 2, 4])
    np.testing.assert_array_equal(span_a, [np.nan, np.nan, 2.5])
    np.testing.assert_array_equal(span_b, [np.nan, np.nan, 2])
    np.testing.assert_array_equal(chikou, [1, 3, 5])


def test_worked_example_keltner() -> None:
    # EMA(2) of 10, 12, 14: seed 11 at bar 1, then 11 + (2/3)(14 - 11) = 13 at bar 2.
    # ATR(1) = each bar's true range: bar 1 max(13 - 11, |13 - 10|, |11 - 10|) = 3, bar 2
    # max(15 - 13, |15 - 12|, |13 - 12|) = 3; multiplier 2 -> bands 6 away.
    b = _bars([11, 13, 15], [9, 11, 13], [10, 12, 14])
    upper, middle, lower = ind.keltner(b["high"], b["low"], b["close"], 2, 1, 2.0)
    np.testing.assert_allclose(middle, [np.nan, 11, 13])
    np.testing.assert_allclose(upper, [np.nan, 17, 19])
    np.testing.assert_allclose(lower, [np.nan, 5, 7])
