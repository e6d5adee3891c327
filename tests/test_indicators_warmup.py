"""Warm-up: computing over [start - warmup_bars, end] and trimming equals the whole history.

"Equals" is the TA-Lib comparison: identical NaN positions and
|x - ref| <= 1e-12 + 1e-9 * max|ref| over the compared range. The seed of a recursive indicator
differs once the history is cut, so this is checked, not argued.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from indicators import DECAY, get_indicator
from indicators.registry import decay_bars
from tests.test_indicators_talib import Arrays, assert_close, demo_stocks, intraday, random_walk

# Finite warm-up: (indicator, params).
FINITE: list[tuple[str, dict[str, Any]]] = [
    ("SMA", {}),
    ("SMA", {"timeperiod": 200}),
    ("WMA", {}),
    ("BBANDS", {}),
    ("BBANDS", {"timeperiod": 7}),
    ("ROC", {}),
    ("STOCH", {}),
    ("STOCH", {"fastk_period": 21, "slowk_period": 5, "slowd_period": 4}),
    ("EMA", {}),
    ("EMA", {"timeperiod": 2}),
    ("EMA", {"timeperiod": 200}),
    ("RSI", {}),
    ("RSI", {"timeperiod": 2}),
    ("RSI", {"timeperiod": 100}),
    ("ATR", {}),
    ("ATR", {"timeperiod": 1}),
    ("ATR", {"timeperiod": 60}),
    ("MACD", {}),
    ("MACD", {"fastperiod": 3, "slowperiod": 10, "signalperiod": 1}),
    ("MACD", {"fastperiod": 20, "slowperiod": 100, "signalperiod": 50}),
]
RECURSIVE = ("EMA", "RSI", "ATR", "MACD")


def _slice(bars: Arrays, lo: int, hi: int) -> Arrays:
    return {k: v[lo:hi] for k, v in bars.items()}


def _check_range(name: str, params: dict[str, Any], bars: Arrays, start: int, end: int) -> None:
    spec = get_indicator(name)
    warmup = spec.warmup_bars(params)
    assert warmup is not None
    full = spec.compute(bars, params)
    lo = max(0, start - warmup)
    part = spec.compute(_slice(bars, lo, end), params)
    for out in spec.outputs:
        assert_close(part[out][start - lo :], full[out][start:end], f"{name} {params} @{start}")


def regime_change(n: int) -> Arrays:
    """A wild first half (8% bars, prices near 1e4) and a quiet second half near 100."""
    wild = random_walk(n // 2, 21, level=1e4, vol=0.08)
    calm = random_walk(n - n // 2, 22, level=100.0, vol=0.001)
    return {k: np.concatenate([wild[k], calm[k]]) for k in wild}


@pytest.mark.parametrize(
    "case", FINITE, ids=lambda c: c[0] + "".join(f"-{v}" for v in c[1].values())
)
def test_warmup_reproduces_the_whole_history(case: tuple[str, dict[str, Any]]) -> None:
    name, params = case
    warmup = get_indicator(name).warmup_bars(params)
    assert warmup is not None
    series = [demo_stocks()[t] for t in ("AAPL", "GOOG")]
    series += [random_walk(warmup + 3000, 30, vol=0.03), regime_change(2 * warmup + 2000)]
    checked = 0
    for bars in series:
        n = len(bars["close"])
        for start in sorted({warmup, n // 2, n - 300}):
            if warmup <= start < n:
                _check_range(name, params, bars, start, min(n, start + 300))
                checked += 1
    assert checked >= 4


@pytest.mark.parametrize("name", RECURSIVE)
def test_lookback_alone_is_not_enough_for_recursive_indicators(name: str) -> None:
    # The warm-up test above has teeth: with only the lookback the seed still shows.
    spec = get_indicator(name)
    bars = random_walk(5000, 31, vol=0.03)
    short = spec.lookback() + 5
    start = 3000
    full = spec.compute(bars)
    part = spec.compute(_slice(bars, start - short, 3300))
    out = spec.outputs[0]
    ref = full[out][start:3300]
    err = np.nanmax(np.abs(part[out][short:] - ref))
    assert err > 1e-12 + 1e-9 * np.nanmax(np.abs(ref))


def test_decay_bars() -> None:
    assert decay_bars(0.0) == 0
    k = decay_bars(0.9)
    assert 0.9**k <= DECAY < 0.9 ** (k - 1)
    kp = decay_bars(0.9, polynomial=True)
    assert (kp + 1) * 0.9**kp <= DECAY and kp > k
    # EMA(30), RSI(14), MACD defaults: a few hundred bars, not thousands.
    assert get_indicator("EMA").warmup_bars() == 29 + decay_bars(1 - 2 / 31)
    assert 300 < (get_indicator("RSI").warmup_bars() or 0) < 600
    macd, ema26 = (
        get_indicator("MACD").warmup_bars(),
        get_indicator("EMA").warmup_bars({"timeperiod": 26}),
    )
    assert macd is not None and ema26 is not None and macd > ema26


def test_cumulative_indicators_need_the_whole_history() -> None:
    bars = demo_stocks()["MSFT"]
    for name, params in (("OBV", {}), ("VWAP", {"anchor": "cumulative"})):
        spec = get_indicator(name)
        assert spec.warmup_bars(params) is None
        assert not spec.warmup_to_session_start(params)
        full = spec.compute(bars, params)["value"]
        part = spec.compute(_slice(bars, 1000, 2000), params)["value"]
        # A trimmed history gives a different level: no finite warm-up would do.
        assert np.nanmin(np.abs(part - full[1000:2000])) > 1e-6
        whole = spec.compute(_slice(bars, 0, 2000), params)["value"]
        assert_close(whole[1000:], full[1000:2000], name)


def test_session_vwap_needs_the_bars_since_the_start_of_the_day() -> None:
    spec = get_indicator("VWAP")
    assert spec.warmup_bars() is None and spec.warmup_to_session_start()
    bars = intraday(3000, 33)
    full = spec.compute(bars)["value"]
    days = bars["time"].astype("datetime64[D]")
    for start in (500, 1234, 2999):
        first = int(np.searchsorted(days, days[start]))  # first bar of that UTC day
        part = spec.compute(_slice(bars, first, 3000))["value"]
        assert_close(part[start - first :], full[start:], f"VWAP @{start}")
        if bars["volume"][first:start].sum() > 0:
            # Starting later in the day is not enough.
            day_end = first + int(np.searchsorted(days[first:], days[start], side="right"))
            late = spec.compute(_slice(bars, start, 3000))["value"]
            assert np.nanmax(np.abs(late[: day_end - start] - full[start:day_end])) > 1e-6
