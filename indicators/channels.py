"""Channels and trend lines that TA-Lib does not have, each from a published definition.

* Keltner channels, in the form StockCharts' ChartSchool gives ("Keltner Channels", Linda
  Raschke's version of Chester Keltner's 1960 bands): middle = EMA(close, timeperiod = 20);
  upper/lower = middle +/- multiplier (2) x ATR(atr_period = 10). The EMA and ATR are this
  package's TA-Lib-exact EMA (seeded with an SMA) and ATR (Wilder smoothing).
* Donchian channels (Richard Donchian; ChartSchool "Donchian Channels"): upper = highest high
  of the last timeperiod (20) bars including the current one, lower = lowest low, middle =
  their mean.
* Supertrend (Olivier Seban), as the TradingView Pine Script v5 reference manual defines
  `ta.supertrend(factor, atrPeriod)` (its source is printed there): basic bands = (high + low)
  / 2 +/- multiplier (3) x ATR(timeperiod = 10); the final upper band only falls and the final
  lower band only rises while the previous close stays inside it; the trend starts down, turns
  up when the close ends above the final upper band, down when it ends below the final lower
  band; the line is the lower band in an uptrend, the upper band in a downtrend. ATR here is
  TA-Lib's (Pine's `ta.atr` seeds its average one bar earlier, with bar 0's high - low).
  The direction is +1 up, -1 down (Pine's sign is the opposite).
* Ichimoku Kinko Hyo (Goichi Hosoda, 1969; ChartSchool "Ichimoku Cloud"): tenkan-sen =
  midpoint of the 9-bar high/low range, kijun-sen = same over 26 bars, senkou span A = (tenkan
  + kijun) / 2 and senkou span B = the 52-bar midpoint, both plotted `displacement` (26) bars
  ahead, and chikou span = the close plotted 26 bars behind. Forward shift: the senkou spans
  are returned at the bar where they are plotted (the value at bar t was computed at bar
  t - displacement, so nothing looks ahead and the cloud over the last bars is the one a
  chart shows there); the chikou span is returned at its own bar (it is that bar's close) and
  is to be drawn displacement bars earlier, since shifting it would need future closes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from indicators._common import FloatArray, apply, as_series, check_float, check_int, nans
from indicators._kernels import window_extreme
from indicators._loops import supertrend_bands
from indicators.moving import _ema_core
from indicators.volatility import _atr_core

HLC = ("high", "low", "close")
MAX_MULTIPLIER = 10.0


def keltner_core(
    high: FloatArray, low: FloatArray, close: FloatArray, n: int, atr_n: int, mult: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    m = len(close)
    middle = _ema_core(close, n)[0] if m >= n else nans(m)
    width = _atr_core(high, low, close, atr_n)[0] * mult
    return middle + width, middle.copy(), middle - width


def _midrange(high: FloatArray, low: FloatArray, n: int) -> FloatArray:
    out = nans(len(high))
    if len(high) >= n:
        mid = window_extreme(high, n, np.maximum)
        mid += window_extreme(low, n, np.minimum)
        mid /= 2.0
        out[n - 1 :] = mid
    return out


def donchian_core(
    high: FloatArray, low: FloatArray, n: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    m = len(high)
    upper, lower = nans(m), nans(m)
    if m >= n:
        window_extreme(high, n, np.maximum, out=upper[n - 1 :])
        window_extreme(low, n, np.minimum, out=lower[n - 1 :])
    return upper, (upper + lower) / 2.0, lower


def supertrend_core(
    high: FloatArray, low: FloatArray, close: FloatArray, n: int, mult: float
) -> tuple[FloatArray, FloatArray]:
    m = len(close)
    if m <= n:
        return nans(m), nans(m)
    width = _atr_core(high, low, close, n)[0] * mult
    mid = (high + low) / 2.0
    return supertrend_bands(close, mid + width, mid - width, n)


def ichimoku_core(
    high: FloatArray, low: FloatArray, close: FloatArray, t: int, k: int, b: int, shift: int
) -> tuple[FloatArray, ...]:
    m = len(close)
    tenkan = _midrange(high, low, t)
    kijun = _midrange(high, low, k)
    span_a, span_b = nans(m), nans(m)
    if m > shift:
        span_a[shift:] = ((tenkan + kijun) / 2.0)[: m - shift]
        span_b[shift:] = _midrange(high, low, b)[: m - shift]
    return tenkan, kijun, span_a, span_b, close.copy()


def keltner(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    timeperiod: int = 20,
    atr_period: int = 10,
    multiplier: float = 2.0,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Keltner channels: EMA of the close +/- multiplier x ATR (upper, middle, lower)."""
    n = check_int("timeperiod", timeperiod, 1)
    a = check_int("atr_period", atr_period, 1)
    k = check_float("multiplier", multiplier, 0.0, MAX_MULTIPLIER)
    series = as_series(high, low, close, names=HLC)
    upper, middle, lower = apply(lambda h, lo, c: keltner_core(h, lo, c, n, a, k), series)
    return upper, middle, lower


def donchian(
    high: ArrayLike, low: ArrayLike, timeperiod: int = 20
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Donchian channels: highest high, mid-range and lowest low of n bars."""
    n = check_int("timeperiod", timeperiod, 1)
    series = as_series(high, low, names=("high", "low"))
    upper, middle, lower = apply(lambda h, lo: donchian_core(h, lo, n), series)
    return upper, middle, lower


def supertrend(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    timeperiod: int = 10,
    multiplier: float = 3.0,
) -> tuple[FloatArray, FloatArray]:
    """Supertrend line and direction (+1 up, -1 down)."""
    n = check_int("timeperiod", timeperiod, 1)
    k = check_float("multiplier", multiplier, 0.0, MAX_MULTIPLIER)
    series = as_series(high, low, close, names=HLC)
    line, direction = apply(lambda h, lo, c: supertrend_core(h, lo, c, n, k), series)
    return line, direction


def ichimoku(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    tenkan_period: int = 9,
    kijun_period: int = 26,
    senkou_b_period: int = 52,
    displacement: int = 26,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Ichimoku: tenkan, kijun, senkou A and B (shifted forward), chikou (unshifted close)."""
    t = check_int("tenkan_period", tenkan_period, 1)
    k = check_int("kijun_period", kijun_period, 1)
    b = check_int("senkou_b_period", senkou_b_period, 1)
    s = check_int("displacement", displacement, 0)
    series = as_series(high, low, close, names=HLC)
    lines = apply(lambda h, lo, c: ichimoku_core(h, lo, c, t, k, b, s), series)
    return lines[0], lines[1], lines[2], lines[3], lines[4]
