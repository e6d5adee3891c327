"""Volatility indicators as TA-Lib defines them: BBANDS, ATR, NATR, TRANGE, STDDEV, VAR."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from indicators._common import (
    FloatArray,
    apply,
    as_series,
    check_float,
    check_int,
    nans,
)
from indicators._kernels import window_mean_var
from indicators._loops import rolling_variance, true_range, wilder_true_range

#: Bounds for the band widths, in standard deviations (TA-Lib takes any real number).
MAX_NBDEV = 10.0


def _bbands_core(
    x: FloatArray, n: int, up: float, down: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    m = len(x)
    if m < n:
        return nans(m), nans(m), nans(m)
    upper, middle, lower = np.empty(m), np.empty(m), np.empty(m)
    for band in (upper, middle, lower):
        band[: n - 1] = np.nan
    mean, std = middle[n - 1 :], upper[n - 1 :]
    window_mean_var(x, n, mean_out=mean, var_out=std)  # never negative, unlike E[x²]-E[x]²
    np.sqrt(std, out=std)
    low = lower[n - 1 :]
    np.multiply(std, -down, out=low)
    low += mean
    std *= up
    std += mean
    return upper, middle, lower


def _true_range(high: FloatArray, low: FloatArray, prev_close: FloatArray) -> FloatArray:
    tr = high - low
    np.maximum(tr, np.abs(high - prev_close), out=tr)
    np.maximum(tr, np.abs(low - prev_close), out=tr)
    return tr


def _atr_core(high: FloatArray, low: FloatArray, close: FloatArray, n: int) -> tuple[FloatArray]:
    m = len(close)
    if m <= n:
        return (nans(m),)
    out = np.empty(m)
    out[:n] = np.nan
    # Wilder smoothing seeded with the mean true range of bars 1..n (bar 0 has none).
    wilder_true_range(high, low, close, n, out)
    return (out,)


def bbands(
    close: ArrayLike, timeperiod: int = 20, nbdevup: float = 2.0, nbdevdn: float = 2.0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Upper, middle (SMA) and lower Bollinger band, population standard deviation (TA-Lib).

    The default period is 20, as in the TA-Lib 0.6 C library (older TA-Lib releases used 5).
    """
    n = check_int("timeperiod", timeperiod, 2)
    up = check_float("nbdevup", nbdevup, 0.0, MAX_NBDEV)
    down = check_float("nbdevdn", nbdevdn, 0.0, MAX_NBDEV)
    upper, middle, lower = apply(
        lambda x: _bbands_core(x, n, up, down), as_series(close, names=("close",))
    )
    return upper, middle, lower


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """Average true range, Wilder-smoothed, NaN for the first timeperiod bars (TA-Lib ATR)."""
    n = check_int("timeperiod", timeperiod, 1)
    series = as_series(high, low, close, names=("high", "low", "close"))
    return apply(lambda h, lo, c: _atr_core(h, lo, c, n), series)[0]


def trange_core(high: FloatArray, low: FloatArray, close: FloatArray) -> tuple[FloatArray]:
    out = np.empty(len(close))
    if len(close):
        out[0] = np.nan
        true_range(high, low, close, out)
    return (out,)


def natr_core(high: FloatArray, low: FloatArray, close: FloatArray, n: int) -> tuple[FloatArray]:
    m = len(close)
    if m <= n:
        return (nans(m),)
    out = np.empty(m)
    out[:n] = np.nan
    wilder_true_range(high, low, close, n, out, True)
    return (out,)


def var_core(x: FloatArray, n: int) -> tuple[FloatArray]:
    m = len(x)
    out = nans(m)
    if m >= n:
        rolling_variance(x, n, out[n - 1 :])
    return (out,)


def stddev_core(x: FloatArray, n: int, nbdev: float) -> tuple[FloatArray]:
    out = var_core(x, n)[0]
    tail = out[n - 1 :]
    small = ~(tail > 0.0)  # TA-Lib 0.6 writes 0 for a variance that is not positive
    np.sqrt(tail, out=tail, where=~small)
    tail *= nbdev
    tail[small] = 0.0
    return (out,)


def trange(high: ArrayLike, low: ArrayLike, close: ArrayLike) -> FloatArray:
    """True range, max(high, previous close) - min(low, previous close) (TA-Lib TRANGE)."""
    series = as_series(high, low, close, names=("high", "low", "close"))
    return apply(trange_core, series, poison=False)[0]


def natr(high: ArrayLike, low: ArrayLike, close: ArrayLike, timeperiod: int = 14) -> FloatArray:
    """ATR as a percentage of the close (TA-Lib NATR; period 2 or more, where TA-Lib's
    period 1 returns the true range without normalising it)."""
    n = check_int("timeperiod", timeperiod, 2)
    series = as_series(high, low, close, names=("high", "low", "close"))
    return apply(lambda h, lo, c: natr_core(h, lo, c, n), series)[0]


def var(close: ArrayLike, timeperiod: int = 5, nbdev: float = 1.0) -> FloatArray:
    """Population variance over n bars; `nbdev` is accepted and unused, as in TA-Lib VAR."""
    n = check_int("timeperiod", timeperiod, 1)
    check_float("nbdev", nbdev, -MAX_NBDEV, MAX_NBDEV)
    return apply(lambda x: var_core(x, n), as_series(close, names=("close",)))[0]


def stddev(close: ArrayLike, timeperiod: int = 5, nbdev: float = 1.0) -> FloatArray:
    """Population standard deviation over n bars times nbdev (TA-Lib STDDEV)."""
    n = check_int("timeperiod", timeperiod, 2)
    k = check_float("nbdev", nbdev, -MAX_NBDEV, MAX_NBDEV)
    return apply(lambda x: stddev_core(x, n, k), as_series(close, names=("close",)))[0]
